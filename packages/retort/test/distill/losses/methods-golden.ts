/** Fixture loaders for the methods of fixtures/methods.json (make_method_fixtures.py). */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradients tf.grads needs
import { fixtureSection } from './golden.js';

/** Multi-stage cases (AT, NST): NHWC maps per stage. */
export interface MultiCase {
  name: string;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  loss: number;
  grad_student: number[][];
}

/** Single-pair cases: features of any rank. */
export interface PairCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  student: number[];
  teacher: number[];
  loss: number;
  grad_student: number[];
  /** Unweighted sub-terms where the method has them (RKD: distance, angle). */
  parts?: number[];
}

export const methodCases = <T>(key: string): T[] => fixtureSection<T[]>('methods.json', key);

export function maps(data: number[][], shapes: number[][]): tf.Tensor4D[] {
  return data.map((d, i) => tf.tensor4d(d, shapes[i] as [number, number, number, number]));
}

export const BACKENDS = ['cpu', 'native'] as const;

/** Cases of methods with 1x1 conv + BN connectors per stage (AB, OFD). */
export interface ConnectorCase {
  name: string;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  kernels: number[][];
  gammas: number[][];
  betas: number[][];
  loss: number;
  grad_student: number[][];
  grad_kernels: number[][];
  grad_gammas: number[][];
  grad_betas: number[][];
}

/** The connectors of a case as tensors, flattened [kernel0, gamma0, beta0, kernel1, ...]. */
export function connectorTensors(c: ConnectorCase): tf.Tensor[] {
  return c.student_shapes.flatMap((s, i) => [
    tf.tensor4d(c.kernels[i]!, [1, 1, s[3]!, c.teacher_shapes[i]![3]!]),
    tf.tensor1d(c.gammas[i]!),
    tf.tensor1d(c.betas[i]!),
  ]);
}

export const asConnectors = (w: tf.Tensor[]) =>
  [0, 1, 2].slice(0, w.length / 3).map((i) => ({
    kernel: w[3 * i] as tf.Tensor4D,
    gamma: w[3 * i + 1] as tf.Tensor1D,
    beta: w[3 * i + 2] as tf.Tensor1D,
  }));
