/**
 * Logit matching: Ba and Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014. The student
 * regresses the teacher's logits (the scores before the softmax) with a squared error, instead of
 * matching softened distributions as KD does; Hinton et al. (2015) show KD tends to this as T grows
 * (with zero-mean logits).
 *
 *   reduction mean:      mean over N * K of (s - t)^2      (PyTorch's F.mse_loss, what most
 *                                                          re-implementations use; the default)
 *   reduction sum-half:  1 / (2N) * sum (s - t)^2          (the paper's objective, eq. 1)
 *
 * The two differ by the constant K / 2; the choice only moves the weight that suits the term.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkLogitPair } from './kd.js';
import { detach, type LossDescriptor } from './types.js';

export const logitMseSchema = z.strictObject({
  reduction: z.enum(['mean', 'sum-half']).default('mean'),
});
export type LogitMseConfig = z.output<typeof logitMseSchema>;

/** Squared error between student and (detached) teacher logits, [N, K] each. */
export function logitMseLoss(
  studentLogits: tf.Tensor2D,
  teacherLogits: tf.Tensor2D,
  opts: LogitMseConfig = { reduction: 'mean' },
): tf.Scalar {
  checkLogitPair('logitMseLoss', studentLogits, teacherLogits);
  return tf.tidy(() => {
    const sq = tf.squaredDifference(studentLogits, detach(teacherLogits));
    if (opts.reduction === 'mean') return tf.mean(sq) as tf.Scalar;
    return tf.div(tf.sum(sq), 2 * studentLogits.shape[0]) as tf.Scalar;
  });
}

export const logitMse: LossDescriptor<LogitMseConfig> = {
  name: 'logit-mse',
  paper: {
    title: 'Do Deep Nets Really Need to be Deep?',
    authors: 'Lei Jimmy Ba, Rich Caruana',
    venue: 'NeurIPS',
    year: 2014,
  },
  schema: logitMseSchema,
  needs: { logits: true },
  loss: (ctx) => logitMseLoss(ctx.student.logits, ctx.teacher.logits, ctx.config),
};
