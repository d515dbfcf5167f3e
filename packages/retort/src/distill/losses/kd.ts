/**
 * KD: Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network", NIPS 2014 Deep
 * Learning Workshop (arXiv 1503.02531, 2015). The student matches the teacher's softened class
 * distribution; the T^2 factor keeps the gradient scale independent of T (section 2). Reduction as
 * RepDistiller's DistillKL: KL summed over classes and batch, divided by the batch size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { detach, type LossDescriptor } from './types.js';

export const kdSchema = z.strictObject({
  /** Softmax temperature (RepDistiller's --kd_T). */
  T: z.number().positive().default(4),
});
export type KdConfig = z.output<typeof kdSchema>;

/**
 * KL(softmax(teacher / T) || softmax(student / T)) * T^2, averaged over the batch.
 * studentLogits, teacherLogits: [N, K]. The teacher side gets no gradient.
 */
export function kdLoss(studentLogits: tf.Tensor2D, teacherLogits: tf.Tensor2D, opts: KdConfig): tf.Scalar {
  checkLogitPair('kdLoss', studentLogits, teacherLogits);
  const { T } = opts;
  const n = studentLogits.shape[0];
  return tf.tidy(() => {
    const logQ = tf.logSoftmax(tf.div(studentLogits, T));
    const logP = tf.logSoftmax(tf.div(detach(teacherLogits), T));
    // p * (log p - log q) from log-probabilities: a teacher probability that underflows to 0 gives
    // 0 * finite = 0, as kl_div's 0 * log 0 = 0 convention, instead of 0 * -inf = NaN.
    const kl = tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)));
    return tf.mul(kl, (T * T) / n) as tf.Scalar;
  });
}

/** Throws unless both are [N, K] with the same N and K (K >= minK). */
export function checkLogitPair(where: string, student: tf.Tensor, teacher: tf.Tensor, minK = 1): void {
  const s = student.shape;
  const t = teacher.shape;
  if (s.length !== 2 || t.length !== 2 || s[0] !== t[0] || s[1] !== t[1] || (s[1] ?? 0) < minK) {
    throw new Error(
      `${where}: expected student and teacher logits of one shape [N, K] with K >= ${minK}, ` +
        `got student [${s.join(', ')}] and teacher [${t.join(', ')}]`,
    );
  }
}

export const kd: LossDescriptor<KdConfig> = {
  name: 'kd',
  paper: {
    title: 'Distilling the Knowledge in a Neural Network',
    authors: 'Geoffrey Hinton, Oriol Vinyals, Jeff Dean',
    venue: 'NIPS Deep Learning and Representation Learning Workshop',
    year: 2015,
  },
  schema: kdSchema,
  needs: { logits: true },
  loss: (ctx) => kdLoss(ctx.student.logits, ctx.teacher.logits, ctx.config),
};
