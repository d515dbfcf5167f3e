/** Fixture loaders for the relation-based methods (fixtures/relation.json, make_relation_fixtures.py). */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradients tf.grads needs
import { fixtureSection } from './golden.js';

/** One student/teacher pair of features in PyTorch layout (maps NCHW), with the reference. */
export interface PairCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  student: number[];
  teacher: number[];
  loss: number;
  grad_student: number[];
}

export const relationCases = <T>(key: string): T[] => fixtureSection<T[]>('relation.json', key);

export { BACKENDS, lossContext } from './golden.js';

/** A fixture tensor in Retort's layout: NCHW maps become NHWC, other ranks are kept. */
export function retortLayout(data: number[], shape: number[]): tf.Tensor {
  return tf.tidy(() => {
    const x = tf.tensor(data, shape);
    return x.rank === 4 ? tf.transpose(x, [0, 2, 3, 1]) : x;
  });
}

/** Per-example shape of a Retort tensor, as the trainer reports tapped shapes. */
export const perExample = (x: tf.Tensor): number[] => x.shape.slice(1);
