/**
 * RKD: Park, Kim, Lu and Cho, "Relational Knowledge Distillation", CVPR 2019. Transfers the
 * structure among examples rather than each example's output: pairwise Euclidean distances, each
 * network's divided by its mean over positive pairs (scale-free), and the cosines of the angles
 * formed by triplets (from normalised difference vectors); both matched with smooth L1 (Huber,
 * beta 1). Loss = wD * distance + wA * angle with the paper's 25 and 50; RepDistiller's beta is 1.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkBatch, flattenRows, l2Normalize, smoothL1 } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const rkdSchema = z.strictObject({
  /** Weight of the distance term. */
  wD: z.number().min(0).default(25),
  /** Weight of the angle term. */
  wA: z.number().min(0).default(50),
});
export type RkdConfig = z.output<typeof rkdSchema>;

/** Pairwise distances [N, N] with a zero diagonal (sqrt of the clamped squared distance). */
function pdist(e: tf.Tensor2D): tf.Tensor2D {
  const n = e.shape[0];
  const sq = tf.sum(tf.square(e), 1);
  const d2 = tf.sub(
    tf.add(tf.reshape(sq, [n, 1]), tf.reshape(sq, [1, n])),
    tf.mul(2, tf.matMul(e, e, false, true)),
  );
  return tf.mul(tf.sqrt(tf.maximum(d2, 1e-12)), tf.sub(1, tf.eye(n))) as tf.Tensor2D;
}

/**
 * Distances divided by their mean over positive entries. Off-diagonal distances are >= 1e-6 by the
 * clamp, so the positive ones are exactly the N (N - 1) off-diagonal entries.
 */
function normalisedDistances(e: tf.Tensor2D): tf.Tensor2D {
  const n = e.shape[0];
  const d = pdist(e);
  return tf.div(d, tf.div(tf.sum(d), n * (n - 1))) as tf.Tensor2D;
}

/** cos of the angle at j between i and k, for all (i, j, k): [N * N * N]. */
function angles(e: tf.Tensor2D): tf.Tensor1D {
  const diff = l2Normalize(tf.sub(tf.expandDims(e, 0), tf.expandDims(e, 1))) as tf.Tensor3D; // [N, N, D]
  return tf.reshape(tf.matMul(diff, diff, false, true), [-1]) as tf.Tensor1D;
}

/** The RKD loss and its two terms (unweighted) for features [N, ...] of any widths. */
export function rkdTerms(
  student: tf.Tensor,
  teacher: tf.Tensor,
  cfg: RkdConfig,
): { loss: tf.Scalar; distance: tf.Scalar; angle: tf.Scalar } {
  checkBatch('rkdLoss', student, teacher, 2);
  return tf.tidy(() => {
    const s = flattenRows(student);
    const t = flattenRows(detach(teacher));
    const distance = smoothL1(normalisedDistances(s), normalisedDistances(t));
    const angle = smoothL1(angles(s), angles(t));
    const loss = tf.add(tf.mul(cfg.wD, distance), tf.mul(cfg.wA, angle)) as tf.Scalar;
    return { loss, distance, angle };
  });
}

export function rkdLoss(student: tf.Tensor, teacher: tf.Tensor, cfg: RkdConfig): tf.Scalar {
  const r = rkdTerms(student, teacher, cfg);
  tf.dispose([r.distance, r.angle]);
  return r.loss;
}

export const rkd: LossDescriptor<RkdConfig, 'feat'> = {
  name: 'rkd',
  paper: {
    title: 'Relational Knowledge Distillation',
    authors: 'Wonpyo Park, Dongju Kim, Yan Lu, Minsu Cho',
    venue: 'CVPR',
    year: 2019,
  },
  schema: rkdSchema,
  needs: { taps: { student: ['feat'], teacher: ['feat'] } },
  loss: (ctx) => rkdLoss(ctx.student.features.feat, ctx.teacher.features.feat, ctx.config),
};
