/**
 * VID: Ahn et al., "Variational Information Distillation for Knowledge Transfer", CVPR 2019.
 * Maximises a variational lower bound of the mutual information between teacher and student
 * features: the teacher map is modelled as a Gaussian whose mean a small regressor predicts from
 * the student map (1x1 conv -> ReLU -> 1x1 conv -> ReLU -> 1x1 conv, no biases, middle width = the
 * teacher's channels, as RepDistiller) and whose per-channel variance is softplus(alpha) + eps,
 * learnt (alpha starts at softplus^-1(5 - eps)). Loss = mean of the negative log-likelihood
 * 0.5 * ((mu - t)^2 / var + log var) per stage pair (larger map pooled to the smaller), summed.
 * RepDistiller's beta is 1.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { checkMaps, matchSpatial } from './feature-ops.js';
import { partWeight, torchUniform, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const vidSchema = z.strictObject({
  /** Initial predicted variance (RepDistiller's init_pred_var). */
  initVariance: z.number().positive().default(5),
  /** Floor of the variance. */
  eps: z.number().positive().default(1e-5),
});
export type VidConfig = z.output<typeof vidSchema>;

/** One pair's regressor: three 1x1 kernels [1, 1, in, out] and alpha [Ct]. */
export interface VidWeights {
  w1: tf.Tensor4D;
  w2: tf.Tensor4D;
  w3: tf.Tensor4D;
  alpha: tf.Tensor1D;
}

/** Negative Gaussian log-likelihood of the teacher map under the student's prediction, mean. */
export function vidPairLoss(
  student: tf.Tensor4D,
  teacher: tf.Tensor4D,
  w: VidWeights,
  eps: number,
): tf.Scalar {
  checkMaps('vidLoss', [student, teacher]);
  if (w.w1.shape[2] !== student.shape[3] || w.w3.shape[3] !== teacher.shape[3])
    throw new Error(
      `vidLoss: regressor maps ${w.w1.shape[2]} to ${w.w3.shape[3]} channels, features have ${student.shape[3]} (student) and ${teacher.shape[3]} (teacher)`,
    );
  return tf.tidy(() => {
    const [s, t] = matchSpatial(student, detach(teacher));
    const h1 = tf.relu(tf.conv2d(s, w.w1, 1, 'valid'));
    const h2 = tf.relu(tf.conv2d(h1, w.w2, 1, 'valid'));
    const mu = tf.conv2d(h2, w.w3, 1, 'valid');
    const variance = tf.add(tf.softplus(w.alpha), eps);
    const nll = tf.mul(0.5, tf.add(tf.div(tf.squaredDifference(mu, t), variance), tf.log(variance)));
    return tf.mean(nll) as tf.Scalar;
  });
}

/** Sum over stage pairs. */
export function vidLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  weights: readonly VidWeights[],
  eps: number,
): tf.Scalar {
  if (students.length !== teachers.length || students.length !== weights.length || students.length === 0)
    throw new Error(
      `vidLoss: expected as many student maps as teacher maps and regressors (at least one), got ${students.length}, ${teachers.length} and ${weights.length}`,
    );
  return tf.tidy(
    () =>
      students
        .map((s, i) => vidPairLoss(s, teachers[i]!, weights[i]!, eps))
        .reduce((a, b) => tf.add(a, b)) as tf.Scalar,
  );
}

function makeRegressor(name: string, cs: number, ct: number, cfg: VidConfig): LayersModel {
  const alpha0 = Math.log(Math.expm1(cfg.initVariance - cfg.eps));
  return weightPart(name, [
    { name: 'w1', shape: [1, 1, cs, ct], init: torchUniform(cs) },
    { name: 'w2', shape: [1, 1, ct, ct], init: torchUniform(ct) },
    { name: 'w3', shape: [1, 1, ct, ct], init: torchUniform(ct) },
    { name: 'alpha', shape: [ct], init: initializers.constant({ value: alpha0 }) },
  ]);
}

export function vidWeights(part: LayersModel): VidWeights {
  return {
    w1: partWeight(part, 'w1') as tf.Tensor4D,
    w2: partWeight(part, 'w2') as tf.Tensor4D,
    w3: partWeight(part, 'w3') as tf.Tensor4D,
    alpha: partWeight(part, 'alpha') as tf.Tensor1D,
  };
}

export type VidParts = Readonly<Record<Stage, LayersModel>>;

export const vid: LossDescriptor<VidConfig, Stage, VidParts> = {
  name: 'vid',
  paper: {
    title: 'Variational Information Distillation for Knowledge Transfer',
    authors: 'Sungsoo Ahn, Shell Xu Hu, Andreas Damianou, Neil D. Lawrence, Zhenwen Dai',
    venue: 'CVPR',
    year: 2019,
  },
  schema: vidSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  parts: (shapes: TapShapes<Stage>, cfg) => {
    const part = (r: Stage) =>
      makeRegressor(`vid_${r}`, shapes.student[r].at(-1)!, shapes.teacher[r].at(-1)!, cfg);
    return { stage1: part('stage1'), stage2: part('stage2'), stage3: part('stage3') };
  },
  loss: (ctx) =>
    vidLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      STAGES.map((r) => vidWeights(ctx.parts[r])),
      ctx.config.eps,
    ),
};
