/**
 * Teacher-free KD, the regularisation form Tf-KD_reg: Yuan, Tay, Li, Wang, Feng, "Revisiting
 * Knowledge Distillation via Label Smoothing Regularization", CVPR 2020, section 4. No teacher
 * network: the student matches a virtual teacher that puts probability `a` on the label and spreads
 * 1 - a evenly over the other classes (a >= 0.9 in the paper, so it is always right and very
 * confident). The virtual distribution is softened with temperature T as softmax(log(p) / T), the
 * student as softmax(s / T); KL summed over classes and batch, divided by the batch size, times T^2
 * as KD. Weight it against CE with the entries' weights (the paper's 1 - alpha and alpha).
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import type { LossDescriptor } from './types.js';

export const tfKdSchema = z.strictObject({
  /** Probability the virtual teacher gives the correct class. */
  a: z.number().gt(0).lt(1).default(0.9),
  /** Softmax temperature of both distributions. */
  T: z.number().positive().default(1),
});
export type TfKdConfig = z.output<typeof tfKdSchema>;

/** KL(virtual teacher_T || softmax(s / T)) * T^2 / N; s [N, K], labels int32 [N]. */
export function tfKdLoss(studentLogits: tf.Tensor2D, labels: tf.Tensor1D, opts: TfKdConfig): tf.Scalar {
  const [n, k] = studentLogits.shape;
  if (labels.shape[0] !== n) throw new Error(`tfKdLoss: ${labels.shape[0]} labels for ${n} rows of logits`);
  if (k < 2) throw new Error(`tfKdLoss: needs at least 2 classes, got ${k}`);
  const { a, T } = opts;
  // log p of the virtual teacher, divided by T, then normalised: the softened distribution.
  const hi = Math.log(a) / T;
  const lo = Math.log((1 - a) / (k - 1)) / T;
  return tf.tidy(() => {
    const onehot = tf.oneHot(labels, k);
    const z = tf.add(tf.mul(onehot, hi - lo), lo);
    const logP = tf.logSoftmax(z);
    const logQ = tf.logSoftmax(tf.div(studentLogits, T));
    const kl = tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)));
    return tf.mul(kl, (T * T) / n) as tf.Scalar;
  });
}

export const tfKd: LossDescriptor<TfKdConfig> = {
  name: 'tf-kd',
  paper: {
    title: 'Revisiting Knowledge Distillation via Label Smoothing Regularization',
    authors: 'Li Yuan, Francis E.H. Tay, Guilin Li, Tao Wang, Jiashi Feng',
    venue: 'CVPR',
    year: 2020,
  },
  schema: tfKdSchema,
  needs: {},
  loss: (ctx) => tfKdLoss(ctx.student.logits, ctx.labels, ctx.config),
};
