/**
 * PKT: Passalis and Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer",
 * ECCV 2018. The teacher's feature space geometry as a distribution: cosine similarities between
 * the batch's examples, mapped to [0, 1] by (c + 1) / 2 and normalised per row into conditional
 * probabilities; the student's are pulled to them by KL, mean(t * log((t + eps) / (s + eps))).
 * Feature widths may differ. RepDistiller taps the penultimate (pooled) vector; beta 30000.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkBatch, flattenRows } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const pktSchema = z.strictObject({
  /** Guards the norms and the logarithm (RepDistiller's 1e-7). */
  eps: z.number().positive().default(1e-7),
});
export type PktConfig = z.output<typeof pktSchema>;

function conditional(f: tf.Tensor, eps: number): tf.Tensor2D {
  const x = flattenRows(f);
  const unit = tf.div(x, tf.add(tf.norm(x, 'euclidean', 1, true), eps));
  const sim = tf.div(tf.add(tf.matMul(unit, unit, false, true), 1), 2);
  return tf.div(sim, tf.sum(sim, 1, true)) as tf.Tensor2D;
}

/** mean(t * log((t + eps) / (s + eps))) over the [N, N] conditional probabilities. */
export function pktLoss(student: tf.Tensor, teacher: tf.Tensor, cfg: PktConfig): tf.Scalar {
  checkBatch('pktLoss', student, teacher);
  return tf.tidy(() => {
    const s = conditional(student, cfg.eps);
    const t = conditional(detach(teacher), cfg.eps);
    return tf.mean(tf.mul(t, tf.log(tf.div(tf.add(t, cfg.eps), tf.add(s, cfg.eps))))) as tf.Scalar;
  });
}

export const pkt: LossDescriptor<PktConfig, 'feat'> = {
  name: 'pkt',
  paper: {
    title: 'Learning Deep Representations with Probabilistic Knowledge Transfer',
    authors: 'Nikolaos Passalis, Anastasios Tefas',
    venue: 'ECCV',
    year: 2018,
  },
  schema: pktSchema,
  needs: { taps: { student: ['feat'], teacher: ['feat'] } },
  loss: (ctx) => pktLoss(ctx.student.features.feat, ctx.teacher.features.feat, ctx.config),
};
