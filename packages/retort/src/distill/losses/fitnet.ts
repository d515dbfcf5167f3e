/**
 * FitNet: Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. The student's "guided"
 * layer is regressed onto the teacher's "hint" layer by a trainable connector and pulled to it with
 * MSE. The connector is RepDistiller's ConvReg: a conv chosen by the spatial sizes (same size: 1x1;
 * student twice the teacher: 3x3 stride 2 padding 1; student larger otherwise: a valid conv of side
 * 1 + Hs - Ht), then batch norm with batch statistics (it only runs in training) and ReLU.
 * A student smaller than the teacher (ConvReg's transposed conv) is not supported and says so.
 * RepDistiller's beta is 100; the paper's hint-only first stage is a config stage (see configs/).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { initializers as tfInit } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { checkMaps } from './feature-ops.js';
import { partWeight, torchUniform, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const fitnetSchema = z.strictObject({});
export type FitnetConfig = z.output<typeof fitnetSchema>;

/** Connector weights: kernel [k, k, Cs, Ct] (HWIO), bias, BN gamma and beta [Ct]. */
export interface ConvRegWeights {
  kernel: tf.Tensor4D;
  bias: tf.Tensor1D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
}

/** ConvReg's conv geometry for student and teacher maps [H, W, C] (no batch). */
export function convRegGeometry(
  s: readonly number[],
  t: readonly number[],
): { k: number; stride: number; pad: number } {
  const [hs, ws] = s as [number, number];
  const [ht, wt] = t as [number, number];
  if (hs === 2 * ht && ws === 2 * wt) return { k: 3, stride: 2, pad: 1 };
  if (hs >= ht && ws >= wt && hs - ht === ws - wt) return { k: 1 + hs - ht, stride: 1, pad: 0 };
  throw new Error(
    `fitnet: no connector for a student map [${s.join(', ')}] and a teacher map [${t.join(', ')}] (the student map must be as large as the teacher's, or twice its size; tap a larger student layer)`,
  );
}

/** conv -> batch norm (batch statistics, eps 1e-5) -> ReLU, as ConvReg in training mode. */
export function convReg(x: tf.Tensor4D, w: ConvRegWeights, stride: number, pad: number): tf.Tensor4D {
  return tf.tidy(() => {
    const padding: [[number, number], [number, number], [number, number], [number, number]] = [
      [0, 0],
      [pad, pad],
      [pad, pad],
      [0, 0],
    ];
    const y = tf.add(tf.conv2d(x, w.kernel, stride, pad === 0 ? 'valid' : padding), w.bias) as tf.Tensor4D;
    const { mean, variance } = tf.moments(y, [0, 1, 2]);
    return tf.relu(tf.batchNorm(y, mean, variance, w.beta, w.gamma, 1e-5)) as tf.Tensor4D;
  });
}

/** MSE between the regressed student map and the teacher's hint. */
export function fitnetLoss(student: tf.Tensor4D, teacher: tf.Tensor4D, w: ConvRegWeights): tf.Scalar {
  checkMaps('fitnetLoss', [student, teacher]);
  const { stride, pad } = convRegGeometry(student.shape.slice(1), teacher.shape.slice(1));
  const k = w.kernel.shape;
  if (k[2] !== student.shape[3] || k[3] !== teacher.shape[3])
    throw new Error(
      `fitnetLoss: connector kernel [${k.join(', ')}] does not map ${student.shape[3]} to ${teacher.shape[3]} channels`,
    );
  return tf.tidy(
    () => tf.mean(tf.squaredDifference(convReg(student, w, stride, pad), detach(teacher))) as tf.Scalar,
  );
}

/** ConvReg's weights for tapped [H, W, C] shapes, initialised like PyTorch (BN: gamma 1, beta 0). */
export function makeConvReg(name: string, s: readonly number[], t: readonly number[]): tfl.LayersModel {
  const { k } = convRegGeometry(s, t);
  const cs = s[2]!;
  const ct = t[2]!;
  const fanIn = cs * k * k;
  return weightPart(name, [
    { name: 'kernel', shape: [k, k, cs, ct], init: torchUniform(fanIn) },
    { name: 'bias', shape: [ct], init: torchUniform(fanIn) },
    { name: 'gamma', shape: [ct], init: tfInit.ones() },
    { name: 'beta', shape: [ct], init: tfInit.zeros() },
  ]);
}

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
    ),
};
