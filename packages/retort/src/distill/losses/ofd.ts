/**
 * OFD: Heo, Kim, Yun, Park, Kwak and Choi, "A Comprehensive Overhaul of Feature Distillation",
 * ICCV 2019 (RepDistiller does not train it; this follows the authors' CIFAR code). Distils the
 * pre-ReLU stage outputs, so the teacher's negative responses, which ReLU would erase, still carry
 * information, through a connector on the student (1x1 conv without bias + BN), with:
 * - a margin ReLU on the teacher: t' = max(t, margin_c), margin_c = E[x | x < 0] for the channel's
 *   pre-ReLU distribution x ~ N(beta_c, gamma_c^2) read off the teacher's BN before the ReLU, or
 *   -3 |gamma_c| when P(x < 0) <= 0.001;
 * - a partial L2: (s - t')^2 only where s > t' or t' > 0 (a student already below a negative
 *   teacher response is not pushed up);
 * summed per stage with weight 1 / 2^(n - 1 - i), divided by the batch size and by 1000 (the
 * official training script's scaling), so the experiment weight is 1.
 * The descriptor sees tapped features, not the teacher's BN weights, so it estimates the margins
 * once, on the first batch: from the per-channel batch mean and standard deviation of the teacher's
 * BN-before-ReLU outputs (roles bn1..bn3, bound to ModelTaps.bnBeforeRelu), which stand for that
 * BN's beta and |gamma| (on the FMNIST ResNet-20 teacher one batch of 128 gives the authors'
 * margins within 0.02; estimating from the pre-ReLU sums instead would be 20-40% more negative, as
 * the residual branch shifts them). The margins are then constants in a non-trainable part.
 *
 * `reduction: mean, margin: empirical` keeps the form this project first specified, beside the
 * authors': each stage's margin per channel is taken from the batch itself,
 * sum(t [t < 0]) / (count(t < 0) + 1e-6) over N, H, W of the teacher's map, and each stage's partial
 * L2 is averaged over its elements instead of summed and divided by N * 1000. The BN taps are still
 * bound (the descriptor's taps are fixed) but not read.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { checkMaps, conv1x1Bn, positive } from './feature-ops.js';
import { partWeight, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const ofdSchema = z.strictObject({
  /** 'sum' (the authors': summed, / N / 1000) or 'mean' (averaged over each stage's elements). */
  reduction: z.enum(['sum', 'mean']).default('sum'),
  /** 'bn' (the authors': from the teacher's BN before the ReLU) or 'empirical' (from each batch). */
  margin: z.enum(['bn', 'empirical']).default('bn'),
});
export type OfdConfig = z.output<typeof ofdSchema>;

/** erfc with fractional error < 1.2e-7 (Numerical Recipes' Chebyshev fit). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const c = [
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
    -0.82215223, 0.17087277,
  ];
  let poly = 0;
  for (let k = c.length - 1; k >= 0; k--) poly = c[k]! + t * poly;
  const r = t * Math.exp(-z * z + poly);
  return x >= 0 ? r : 2 - r;
}
const normalCdf = (x: number) => 0.5 * erfc(-x / Math.SQRT2);

/**
 * Per channel E[x | x < 0] for x ~ N(beta, gamma^2) (|gamma| is the standard deviation), or
 * -3 |gamma| when P(x < 0) <= 0.001: the authors' get_margin_from_BN.
 */
export function ofdMargin(gamma: ArrayLike<number>, beta: ArrayLike<number>): Float32Array {
  const out = new Float32Array(gamma.length);
  for (let c = 0; c < gamma.length; c++) {
    const s = Math.abs(gamma[c]!);
    const m = beta[c]!;
    if (s === 0) {
      out[c] = Math.min(m, 0); // all mass at beta
      continue;
    }
    const cdf = normalCdf(-m / s);
    out[c] = cdf > 0.001 ? (-s * Math.exp(-((m / s) ** 2) / 2)) / Math.sqrt(2 * Math.PI) / cdf + m : -3 * s;
  }
  return out;
}

/** The connector: kernel [1, 1, Cs, Ct] (no bias), BN gamma and beta [Ct]. */
export interface OfdConnectorWeights {
  kernel: tf.Tensor4D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
}

/** Per channel sum(t [t < 0]) / (count(t < 0) + 1e-6) over N, H, W of a map [N, H, W, C]. */
export function ofdEmpiricalMargins(t: tf.Tensor4D): tf.Tensor1D {
  // With ops that have gradients (relu, step: zero), so a tape may pass through it: Less has none.
  return tf.tidy(() => {
    const sumNeg = tf.neg(tf.sum(tf.relu(tf.neg(t)), [0, 1, 2]));
    const count = tf.sum(tf.step(tf.neg(t)), [0, 1, 2]);
    return tf.div(sumNeg, tf.add(count, 1e-6)) as tf.Tensor1D;
  });
}

/**
 * The OFD loss over stage pairs (pre-ReLU maps [N, H, W, C]) with given margins [Ct] per stage, or
 * margins taken from the batch ('empirical'); `reduction` 'sum' (default) or 'mean' (see above).
 */
export function ofdLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  connectors: readonly OfdConnectorWeights[],
  margins: readonly tf.Tensor1D[] | 'empirical',
  reduction: 'sum' | 'mean' = 'sum',
): tf.Scalar {
  const n = students.length;
  const nm = margins === 'empirical' ? n : margins.length;
  if (teachers.length !== n || connectors.length !== n || nm !== n || n === 0)
    throw new Error(
      `ofdLoss: expected matching numbers (>= 1) of student maps, teacher maps, connectors and margins, got ${n}, ${teachers.length}, ${connectors.length} and ${nm}`,
    );
  checkMaps('ofdLoss', [...students, ...teachers]);
  students.forEach((s, i) => {
    const t = teachers[i]!;
    const k = connectors[i]!.kernel.shape;
    const ct = t.shape[3];
    if (s.shape[1] !== t.shape[1] || s.shape[2] !== t.shape[2] || k[2] !== s.shape[3] || k[3] !== ct)
      throw new Error(
        `ofdLoss: stage ${i + 1}: a 1x1 connector with kernel [${k.join(', ')}] cannot map the student map [${s.shape.join(', ')}] onto the teacher map [${t.shape.join(', ')}] (expected equal H, W and kernel [1, 1, ${s.shape[3]}, ${ct}])`,
      );
    if (margins !== 'empirical' && margins[i]!.shape[0] !== ct)
      throw new Error(
        `ofdLoss: stage ${i + 1}: ${(margins as readonly tf.Tensor1D[])[i]!.shape[0]} margins for ${ct} teacher channels`,
      );
  });
  return tf.tidy(() => {
    const terms = students.map((x, i) => {
      const c = connectors[i]!;
      const s = conv1x1Bn(x, c.kernel, c.gamma, c.beta);
      const tt = detach(teachers[i]!);
      // Batch margins are computed inside the tape: broadcast them to the map's shape first, since
      // tfjs's Maximum gradient does not reduce a broadcast input (they are constants either way).
      const t = tf.maximum(
        tt,
        margins === 'empirical' ? tf.broadcastTo(detach(ofdEmpiricalMargins(tt)), tt.shape) : margins[i]!,
      );
      const above = positive(tf.sub(s, t));
      const active = positive(t);
      const mask = tf.sub(tf.add(above, active), tf.mul(above, active)); // s > t' or t' > 0
      const sq = tf.mul(tf.squaredDifference(s, t), mask);
      return tf.div(reduction === 'mean' ? tf.mean(sq) : tf.sum(sq), 2 ** (n - 1 - i));
    });
    const total = terms.reduce((p, q) => tf.add(p, q));
    return (reduction === 'mean' ? total : tf.div(total, students[0]!.shape[0] * 1000)) as tf.Scalar;
  });
}

/** A connector Cs -> Ct, initialised as the authors': kernel N(0, 2 / Ct), BN gamma 1, beta 0. */
export function makeOfdConnector(name: string, cs: number, ct: number): LayersModel {
  return weightPart(name, [
    { name: 'kernel', shape: [1, 1, cs, ct], init: initializers.randomNormal({ stddev: Math.sqrt(2 / ct) }) },
    { name: 'gamma', shape: [ct], init: initializers.ones() },
    { name: 'beta', shape: [ct], init: initializers.zeros() },
  ]);
}

export function ofdConnectorWeights(part: LayersModel): OfdConnectorWeights {
  return {
    kernel: partWeight(part, 'kernel') as tf.Tensor4D,
    gamma: partWeight(part, 'gamma') as tf.Tensor1D,
    beta: partWeight(part, 'beta') as tf.Tensor1D,
  };
}

/** The BN-before-ReLU outputs the margins are estimated from, one per stage (teacher only). */
export const OFD_BN_ROLES = ['bn1', 'bn2', 'bn3'] as const;
export type OfdRole = Stage | (typeof OFD_BN_ROLES)[number];

export type OfdParts = Readonly<Record<Stage, LayersModel>> & { readonly margins: LayersModel };

/** Connectors per stage and the margins part (zeros and set = 0 until the first batch). */
export function ofdParts(shapes: TapShapes<OfdRole>): OfdParts {
  const channels = (r: Stage) => shapes.teacher[r].at(-1)!;
  STAGES.forEach((r, i) => {
    const bn = shapes.teacher[OFD_BN_ROLES[i]!];
    if (bn.at(-1) !== channels(r))
      throw new Error(
        `ofd: the teacher's ${OFD_BN_ROLES[i]} tap [${bn.join(', ')}] must have the channels of its ${r} tap [${shapes.teacher[r].join(', ')}] (bind it to the BN before that stage's last ReLU)`,
      );
  });
  const margins = weightPart('ofd_margins', [
    ...STAGES.map((r) => ({ name: r, shape: [channels(r)], init: initializers.zeros(), trainable: false })),
    { name: 'set', shape: [1], init: initializers.zeros(), trainable: false },
  ]);
  const conn = (r: Stage) => makeOfdConnector(`ofd_${r}`, shapes.student[r].at(-1)!, channels(r));
  return { stage1: conn('stage1'), stage2: conn('stage2'), stage3: conn('stage3'), margins };
}

/**
 * Sets the margins from a batch of the teacher's BN-before-ReLU outputs [N, H, W, C], once: the
 * per-channel batch mean and standard deviation stand for the BN's beta and |gamma|.
 */
export function estimateOfdMargins(part: LayersModel, bnOutputs: readonly tf.Tensor4D[]): void {
  const set = partWeight(part, 'set');
  if (set.dataSync()[0] !== 0) return;
  for (const [i, r] of STAGES.entries()) {
    tf.tidy(() => {
      const { mean, variance } = tf.moments(bnOutputs[i]!, [0, 1, 2]);
      partWeight(part, r).assign(tf.tensor1d(ofdMargin(tf.sqrt(variance).dataSync(), mean.dataSync())));
    });
  }
  tf.tidy(() => set.assign(tf.ones([1])));
}

export const ofd: LossDescriptor<OfdConfig, OfdRole, OfdParts> = {
  name: 'ofd',
  paper: {
    title: 'A Comprehensive Overhaul of Feature Distillation',
    authors: 'Byeongho Heo, Jeesoo Kim, Sangdoo Yun, Hyojin Park, Nojun Kwak, Jin Young Choi',
    venue: 'ICCV',
    year: 2019,
  },
  schema: ofdSchema,
  needs: { taps: { student: STAGES, teacher: [...STAGES, ...OFD_BN_ROLES] } },
  parts: (shapes) => ofdParts(shapes),
  loss: (ctx) => {
    const empirical = ctx.config.margin === 'empirical';
    if (!empirical)
      estimateOfdMargins(
        ctx.parts.margins,
        OFD_BN_ROLES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      );
    return ofdLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      STAGES.map((r) => ofdConnectorWeights(ctx.parts[r])),
      empirical ? 'empirical' : STAGES.map((r) => partWeight(ctx.parts.margins, r) as tf.Tensor1D),
      ctx.config.reduction,
    );
  },
};
