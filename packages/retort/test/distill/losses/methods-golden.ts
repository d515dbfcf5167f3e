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
