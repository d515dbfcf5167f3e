/**
 * FitNet: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. The student's "guided"
 * layer is regressed onto the teacher's "hint" layer by a trainable connector and pulled to it with
 * MSE. The connector is RepDistiller's ConvReg (Tian et al., ICLR 2020): a conv chosen by the
 * spatial sizes, then batch norm with batch statistics (it only runs in training) and ReLU:
 * - student twice the teacher: 3x3, stride 2, padding 1;
 * - student half the teacher: 4x4 transposed conv, stride 2, padding 1;
 * - otherwise, student at least as large: a valid conv of kernel (1 + Hs - Ht, 1 + Ws - Wt), so a
 *   1x1 conv for equal sizes (RepDistiller's choice; the paper's regressor is also a plain conv).
 * RepDistiller's beta is 100; the paper's hint-only first stage is a config stage (see configs/).
 * AB (ab.ts) reuses the connector without its ReLU, as RepDistiller's Connector does.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { initializers as tfInit } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { batchStatNorm, checkMaps } from './feature-ops.js';
import { partWeight, torchUniform, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const fitnetSchema = z.strictObject({
  /**
   * The distance between the regressed map and the hint, a mean over all elements: l2 (squared
   * error, the paper and RepDistiller), l1 (absolute error), smooth-l1 (Huber with threshold
   * `beta`, PyTorch's SmoothL1Loss: 0.5 d^2 / beta below beta, |d| - 0.5 beta above).
   */
  distance: z.enum(['l2', 'l1', 'smooth-l1']).default('l2'),
  /** smooth-l1's threshold (PyTorch's default 1). */
  beta: z.number().positive().default(1),
});
export type FitnetConfig = z.output<typeof fitnetSchema>;

/**
 * Connector weights: kernel [kh, kw, Cs, Ct] (HWIO), or [4, 4, Ct, Cs] for the transposed conv
 * (tfjs's conv2dTranspose layout, the same numbers as PyTorch's [Cs, Ct, 4, 4]); bias, BN gamma and
 * beta [Ct].
 */
export interface ConvRegWeights {
  kernel: tf.Tensor4D;
  bias: tf.Tensor1D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
}

/** ConvReg's conv for a student map [Hs, Ws, Cs] and a teacher map [Ht, Wt, Ct]. */
export interface ConvRegGeometry {
  transposed: boolean;
  kh: number;
  kw: number;
  stride: number;
  pad: number;
}

/** ConvReg's conv geometry for student and teacher maps [H, W, C] (no batch). */
export function convRegGeometry(
  s: readonly number[],
  t: readonly number[],
  where = 'fitnet',
): ConvRegGeometry {
  const [hs, ws] = s as [number, number];
  const [ht, wt] = t as [number, number];
  if (s.length === 3 && t.length === 3) {
    if (hs === 2 * ht && ws === 2 * wt) return { transposed: false, kh: 3, kw: 3, stride: 2, pad: 1 };
    if (2 * hs === ht && 2 * ws === wt) return { transposed: true, kh: 4, kw: 4, stride: 2, pad: 1 };
    if (hs >= ht && ws >= wt)
      return { transposed: false, kh: 1 + hs - ht, kw: 1 + ws - wt, stride: 1, pad: 0 };
  }
  throw new Error(
    `${where}: no connector from a student map [${s.join(', ')}] to a teacher map [${t.join(', ')}] ` +
      '(expected [H, W, C] maps with the student as large as the teacher, twice its size or half of it)',
  );
}

/** The kernel shape ConvReg uses for these maps. */
function kernelShape(g: ConvRegGeometry, cs: number, ct: number): number[] {
  return g.transposed ? [g.kh, g.kw, ct, cs] : [g.kh, g.kw, cs, ct];
}

/**
 * conv (by geometry, with bias) -> batch norm with batch statistics (eps 1e-5) -> ReLU when `relu`,
 * as ConvReg in training mode. x: [N, Hs, Ws, Cs] -> [N, Ht, Wt, Ct].
 */
export function convReg(
  x: tf.Tensor4D,
  w: ConvRegWeights,
  teacherHW: readonly [number, number],
  relu = true,
): tf.Tensor4D {
  const [n, hs, ws, cs] = x.shape;
  const ct = w.bias.shape[0];
  const g = convRegGeometry([hs, ws, cs], [teacherHW[0], teacherHW[1], ct], 'convReg');
  const k = w.kernel.shape;
  const want = kernelShape(g, cs, ct);
  if (k.some((d, i) => d !== want[i]) || w.gamma.shape[0] !== ct || w.beta.shape[0] !== ct)
    throw new Error(
      `convReg: a [${hs}, ${ws}, ${cs}] -> [${teacherHW.join(', ')}, ${ct}] connector needs kernel ` +
        `[${want.join(', ')}] and bias, gamma, beta [${ct}]; got kernel [${k.join(', ')}], gamma ` +
        `[${w.gamma.shape.join(', ')}], beta [${w.beta.shape.join(', ')}]`,
    );
  return tf.tidy(() => {
    const p = g.pad;
    const y = g.transposed
      ? tf.conv2dTranspose(x, w.kernel, [n, teacherHW[0], teacherHW[1], ct], g.stride, p)
      : tf.conv2d(x, w.kernel, g.stride, [
          [0, 0],
          [p, p],
          [p, p],
          [0, 0],
        ]);
    const out = batchStatNorm(tf.add(y, w.bias), w.gamma, w.beta);
    return relu ? tf.relu(out) : out;
  });
}

export type HintDistance = FitnetConfig['distance'];

/** Mean over all elements of the distance between a and b (see fitnetSchema). */
export function hintDistance(a: tf.Tensor, b: tf.Tensor, distance: HintDistance = 'l2', beta = 1): tf.Scalar {
  return tf.tidy(() => {
    if (distance === 'l2') return tf.mean(tf.squaredDifference(a, b)) as tf.Scalar;
    const d = tf.abs(tf.sub(a, b));
    if (distance === 'l1') return tf.mean(d) as tf.Scalar;
    // With m = min(d, beta): 0.5 m^2 / beta + (d - m) is 0.5 d^2 / beta below beta and d - 0.5 beta
    // above, written without a comparison (which has no gradient).
    const m = tf.minimum(d, beta);
    return tf.mean(tf.add(tf.div(tf.mul(tf.square(m), 0.5), beta), tf.sub(d, m))) as tf.Scalar;
  });
}

/**
 * mean(distance(ConvReg(student), teacher)) over all elements, squared error by default.
 * student: [N, Hs, Ws, Cs]; teacher: [N, Ht, Wt, Ct] (RepDistiller's hint: a post-ReLU map).
 */
export function fitnetLoss(
  student: tf.Tensor4D,
  teacher: tf.Tensor4D,
  w: ConvRegWeights,
  opts: { distance?: HintDistance; beta?: number } = {},
): tf.Scalar {
  checkMaps('fitnetLoss', [student, teacher]);
  const [, ht, wt, ct] = teacher.shape;
  if (w.bias.shape[0] !== ct)
    throw new Error(
      `fitnetLoss: the connector maps to ${w.bias.shape[0]} channels, the teacher map [${teacher.shape.join(', ')}] has ${ct}`,
    );
  return tf.tidy(() =>
    hintDistance(convReg(student, w, [ht, wt]), detach(teacher), opts.distance, opts.beta),
  );
}

/**
 * ConvReg's weights for tapped [H, W, C] shapes, initialised as PyTorch's layers: conv kernel and
 * bias U(+-1/sqrt(fan_in)) (a transposed conv's fan_in counts its output channels, as PyTorch's
 * does), BN gamma 1 and beta 0.
 */
export function makeConvReg(
  name: string,
  s: readonly number[],
  t: readonly number[],
  where = 'fitnet',
): tfl.LayersModel {
  const g = convRegGeometry(s, t, where);
  const cs = s[2]!;
  const ct = t[2]!;
  const fanIn = (g.transposed ? ct : cs) * g.kh * g.kw;
  return weightPart(name, [
    { name: 'kernel', shape: kernelShape(g, cs, ct), init: torchUniform(fanIn) },
    { name: 'bias', shape: [ct], init: torchUniform(fanIn) },
    { name: 'gamma', shape: [ct], init: tfInit.ones() },
    { name: 'beta', shape: [ct], init: tfInit.zeros() },
  ]);
}

/** The live variables of a part made by makeConvReg. */
export function convRegWeights(part: tfl.LayersModel): ConvRegWeights {
  return {
    kernel: partWeight(part, 'kernel') as tf.Tensor4D,
    bias: partWeight(part, 'bias') as tf.Tensor1D,
    gamma: partWeight(part, 'gamma') as tf.Tensor1D,
    beta: partWeight(part, 'beta') as tf.Tensor1D,
  };
}

export type FitnetParts = { readonly connector: tfl.LayersModel };

export const fitnet: LossDescriptor<FitnetConfig, 'hint', FitnetParts> = {
  name: 'fitnet',
  paper: {
    title: 'FitNets: Hints for Thin Deep Nets',
    authors:
      'Adriana Romero, Nicolas Ballas, Samira Ebrahimi Kahou, Antoine Chassang, Carlo Gatta, Yoshua Bengio',
    venue: 'ICLR',
    year: 2015,
  },
  schema: fitnetSchema,
  needs: { taps: { student: ['hint'], teacher: ['hint'] } },
  parts: (shapes: TapShapes<'hint'>) => ({
    connector: makeConvReg('fitnet_connector', shapes.student.hint, shapes.teacher.hint),
  }),
  loss: (ctx) =>
    fitnetLoss(
      ctx.student.features.hint as tf.Tensor4D,
      ctx.teacher.features.hint as tf.Tensor4D,
      convRegWeights(ctx.parts.connector),
      ctx.config,
    ),
};
