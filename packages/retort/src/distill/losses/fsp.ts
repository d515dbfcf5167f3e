/**
 * FSP: Yim, Joo, Bae and Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network
 * Minimization and Transfer Learning", CVPR 2017. The "flow of solution procedure" between two
 * layers is the Gram matrix of their maps, G[i, j] = mean over positions of top_i * bottom_j; the
 * student matches the teacher's FSP matrices between consecutive stages (the larger map of a pair
 * pooled to the smaller, by adaptive average pooling as RepDistiller). Per pair mean((G_s - G_t)^2)
 * over batch and matrix entries, summed. Channel counts must match between student and teacher map
 * by map (RepDistiller raises otherwise); spatial sizes may differ. RepDistiller taps the stem and
 * the three stage outputs (post-ReLU) and uses FSP only as an initialisation stage, with the
 * unweighted loss (its -b 50 multiplies the main stage's FSP term, which it sets to 0); the main
 * stage then trains on CE.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { checkMaps, matchSpatial } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const fspSchema = z.strictObject({});
export type FspConfig = z.output<typeof fspSchema>;

export const FSP_STAGES = ['stage0', 'stage1', 'stage2', 'stage3'] as const;
export type FspStage = (typeof FSP_STAGES)[number];

/** FSP matrices [N, C_top, C_bottom] between consecutive maps. */
export function fspMatrices(maps: readonly tf.Tensor4D[]): tf.Tensor3D[] {
  return maps.slice(0, -1).map((bottom, i) => {
    const [b, t] = matchSpatial(bottom, maps[i + 1]!);
    const [n, h, w, cb] = b.shape;
    const ct = t.shape[3];
    const bf = tf.reshape(b, [n, h * w, cb]);
    const tfl = tf.reshape(t, [n, h * w, ct]);
    return tf.div(tf.matMul(tfl, bf, true, false), h * w) as tf.Tensor3D;
  });
}

/** Sum over consecutive pairs of mean((G_s - G_t)^2). */
export function fspLoss(students: readonly tf.Tensor4D[], teachers: readonly tf.Tensor4D[]): tf.Scalar {
  if (students.length !== teachers.length || students.length < 2)
    throw new Error(
      `fspLoss: expected as many student as teacher maps (>= 2), got ${students.length} and ${teachers.length}`,
    );
  checkMaps('fspLoss', [...students, ...teachers]);
  students.forEach((s, i) => {
    if (s.shape[3] !== teachers[i]!.shape[3])
      throw new Error(
        `fspLoss: map ${i} has ${s.shape[3]} student and ${teachers[i]!.shape[3]} teacher channels ` +
          `(student [${s.shape.join(', ')}], teacher [${teachers[i]!.shape.join(', ')}]); FSP matrices ` +
          'need equal channel counts map by map: tap layers of equal width',
      );
  });
  return tf.tidy(() => {
    const gs = fspMatrices(students);
    const gt = fspMatrices(teachers.map((t) => detach(t)));
    return gs
      .map((g, i) => tf.mean(tf.squaredDifference(g, gt[i]!)))
      .reduce((a, b) => tf.add(a, b)) as tf.Scalar;
  });
}

export const fsp: LossDescriptor<FspConfig, FspStage> = {
  name: 'fsp',
  paper: {
    title:
      'A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer Learning',
    authors: 'Junho Yim, Donggyu Joo, Jihoon Bae, Junmo Kim',
    venue: 'CVPR',
    year: 2017,
  },
  schema: fspSchema,
  needs: { taps: { student: FSP_STAGES, teacher: FSP_STAGES } },
  loss: (ctx) =>
    fspLoss(
      FSP_STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      FSP_STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
    ),
};
