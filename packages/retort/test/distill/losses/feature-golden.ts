/**
 * Fixture loaders for the feature-map methods (fixtures/feature.json, make_feature_fixtures.py):
 * PyTorch layouts in the file, Retort's here.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradients tf.grads needs
import { fixtureSection } from './golden.js';

export const featureCases = <T>(key: string): T[] => fixtureSection<T[]>('feature.json', key);

export { BACKENDS, lossContext } from './golden.js';

type Shape4 = [number, number, number, number];

/** An NCHW map as NHWC [N, H, W, C]. */
export function nhwc(data: number[], nchwShape: number[]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, nchwShape as Shape4), [0, 2, 3, 1]));
}

/** NCHW maps as NHWC. */
export const nhwcMaps = (data: number[][], shapes: number[][]): tf.Tensor4D[] =>
  data.map((d, i) => nhwc(d, shapes[i]!));

/** A conv kernel OIHW [O, I, kh, kw] as HWIO [kh, kw, I, O]. */
export function hwio(data: number[], oihw: number[]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, oihw as Shape4), [2, 3, 1, 0]));
}

/**
 * A transposed-conv kernel in PyTorch's [in, out, kh, kw] as tfjs conv2dTranspose's
 * [kh, kw, out, in]: the same numbers, no flip (both are the adjoint of the conv with that kernel).
 */
export function transposedKernel(data: number[], ioShape: number[]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, ioShape as Shape4), [2, 3, 1, 0]));
}

/** Per-example shape [H, W, C] of an NCHW shape, as the trainer reports tapped shapes. */
export const tapShape = (nchwShape: number[]): number[] => [nchwShape[2]!, nchwShape[3]!, nchwShape[1]!];

export function setWeights(vars: Record<string, tf.Variable>, values: Record<string, tf.Tensor>): void {
  for (const [k, v] of Object.entries(values)) {
    const w = vars[k];
    if (w === undefined) throw new Error(`no weight ${k}`);
    w.assign(v);
  }
}
