/**
 * NST: Huang and Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer",
 * arXiv 1707.01219, 2017. Each channel's spatial activation pattern, L2-normalised, is a sample of
 * the layer's "neuron selectivity" distribution; the student's distribution is matched to the
 * teacher's by the squared MMD with the polynomial kernel k(x, y) = (x . y)^2 (the paper's best,
 * d = 2, c = 0): mean k(t, t) + mean k(s, s) - 2 mean k(s, t), per stage pair, summed; RepDistiller
 * applies it to the post-ReLU outputs of the three stages with beta 50. Channel counts may differ;
 * spatial sizes are matched as in AT (the map with the larger height adaptive-average-pooled to the
 * other's size).
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { checkMaps, l2Normalize, matchSpatial } from './feature-ops.js';
import { detach, type LossDescriptor } from './types.js';

export const nstSchema = z.strictObject({});
export type NstConfig = z.output<typeof nstSchema>;

/** [N, H, W, C] -> [N, C, H*W] with each channel's pattern L2-normalised. */
function selectivity(f: tf.Tensor4D): tf.Tensor3D {
  const [n, h, w, c] = f.shape;
  return l2Normalize(tf.transpose(tf.reshape(f, [n, h * w, c]), [0, 2, 1])) as tf.Tensor3D;
}

/** mean over batch and channel pairs of (a_i . b_j)^2. */
function polyMean(a: tf.Tensor3D, b: tf.Tensor3D): tf.Scalar {
  return tf.mean(tf.square(tf.matMul(a, b, false, true))) as tf.Scalar;
}

/** Squared polynomial-kernel MMD between channel selectivity patterns, summed over stage pairs. */
export function nstLoss(students: readonly tf.Tensor4D[], teachers: readonly tf.Tensor4D[]): tf.Scalar {
  if (students.length !== teachers.length || students.length === 0)
    throw new Error(
      `nstLoss: expected as many student as teacher maps (>= 1), got ${students.length} and ${teachers.length}`,
    );
  checkMaps('nstLoss', [...students, ...teachers]);
  return tf.tidy(() => {
    const terms = students.map((sMap, i) => {
      const [a, b] = matchSpatial(sMap, detach(teachers[i]!));
      const s = selectivity(a);
      const t = selectivity(b);
      return tf.sub(tf.add(polyMean(t, t), polyMean(s, s)), tf.mul(2, polyMean(s, t)));
    });
    return terms.reduce((a, b) => tf.add(a, b)) as tf.Scalar;
  });
}

export const nst: LossDescriptor<NstConfig, Stage> = {
  name: 'nst',
  paper: {
    title: 'Like What You Like: Knowledge Distill via Neuron Selectivity Transfer',
    authors: 'Zehao Huang, Naiyan Wang',
    venue: 'arXiv 1707.01219',
    year: 2017,
  },
  schema: nstSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  loss: (ctx) =>
    nstLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
    ),
};
