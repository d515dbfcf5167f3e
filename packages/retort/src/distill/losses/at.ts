/**
 * AT: Zagoruyko and Komodakis, "Paying More Attention to Attention: Improving the Performance of
 * Convolutional Neural Networks via Attention Transfer", ICLR 2017. The student matches the
 * teacher's spatial attention maps, a(f) = normalize(mean_c f^p) over the flattened map (p = 2,
 * the paper's activation-based attention), at three stages (RepDistiller: the post-ReLU outputs of
 * the three stages). Maps of different sizes: the one with the larger height is adaptive-average-
 * pooled (F.adaptive_avg_pool2d's windows) to the other's height and width before the attention
 * maps are taken (RepDistiller's rule; it pools to a square (H, H), the same for square maps).
 * Per pair mean((a_s - a_t)^2) over batch and positions, summed over pairs; RepDistiller's beta is
 * 1000. (The paper's loss is beta/2 times the un-squared L2 distance per example; RepDistiller's,
 * kept here, is the mean square.)
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkMaps, l2Normalize, matchSpatial } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const atSchema = z.strictObject({
  /** Exponent of the activation-based attention map (the paper's p). */
  p: z.number().positive().default(2),
});
export type AtConfig = z.output<typeof atSchema>;

/** normalize(mean over channels of f^p), flattened: [N, H, W, C] -> [N, H*W]. */
export function attentionMap(f: tf.Tensor4D, p: number): tf.Tensor2D {
  return tf.tidy(() => {
    const a = tf.mean(p === 2 ? tf.square(f) : tf.pow(f, p), 3);
    return l2Normalize(tf.reshape(a, [f.shape[0], -1])) as tf.Tensor2D;
  });
}

/** Sum over stage pairs of mean((a(s_i) - a(t_i))^2). Teacher maps get no gradient. */
export function atLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  cfg: AtConfig,
): tf.Scalar {
  if (students.length !== teachers.length || students.length === 0)
    throw new Error(
      `atLoss: expected as many student as teacher maps (>= 1), got ${students.length} and ${teachers.length}`,
    );
  checkMaps('atLoss', [...students, ...teachers]);
  return tf.tidy(() => {
    const terms = students.map((s, i) => {
      const [a, b] = matchSpatial(s, detach(teachers[i]!));
      return tf.mean(tf.square(tf.sub(attentionMap(a, cfg.p), attentionMap(b, cfg.p))));
    });
    return terms.reduce((a, b) => tf.add(a, b)) as tf.Scalar;
  });
}

export const STAGES = ['stage1', 'stage2', 'stage3'] as const;
export type Stage = (typeof STAGES)[number];

export const at: LossDescriptor<AtConfig, Stage> = {
  name: 'at',
  paper: {
    title:
      'Paying More Attention to Attention: Improving the Performance of Convolutional Neural Networks via Attention Transfer',
    authors: 'Sergey Zagoruyko, Nikos Komodakis',
    venue: 'ICLR',
    year: 2017,
  },
  schema: atSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  loss: (ctx) =>
    atLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      ctx.config,
    ),
};
