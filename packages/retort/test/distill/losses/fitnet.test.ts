import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { convRegWeights, fitnet, fitnetLoss } from '../../../src/distill/losses/fitnet.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases } from './methods-golden.js';

interface FitnetCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  kernel_shape: number[];
  student: number[];
  teacher: number[];
  kernel: number[];
  bias: number[];
  gamma: number[];
  beta: number[];
  loss: number;
  grad_student: number[];
  grad_kernel: number[];
  grad_bias: number[];
  grad_gamma: number[];
  grad_beta: number[];
}
const cases = methodCases<FitnetCase>('fitnet');

for (const backend of BACKENDS) {
  describe(`FitNet (ConvReg + MSE) vs PyTorch (RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student, kernel, bias, gamma, beta)`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor4d(c.student, c.student_shape as [number, number, number, number]);
        const t = tf.tensor4d(c.teacher, c.teacher_shape as [number, number, number, number]);
        const w = [
          tf.tensor4d(c.kernel, c.kernel_shape as [number, number, number, number]),
          tf.tensor1d(c.bias),
          tf.tensor1d(c.gamma),
          tf.tensor1d(c.beta),
        ];
        const f = (x: tf.Tensor, k: tf.Tensor, b: tf.Tensor, g: tf.Tensor, be: tf.Tensor) =>
          fitnetLoss(x as tf.Tensor4D, t, {
            kernel: k as tf.Tensor4D,
            bias: b as tf.Tensor1D,
            gamma: g as tf.Tensor1D,
            beta: be as tf.Tensor1D,
          });
        assertClose(
          await f(s, ...(w as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor])).data(),
          [c.loss],
          `${c.name} loss`,
        );
        const grads = tf.grads(f)([s, ...w]);
        const want = [c.grad_student, c.grad_kernel, c.grad_bias, c.grad_gamma, c.grad_beta];
        for (const [i, g] of want.entries())
          assertClose(await grads[i]!.data(), g, `${c.name} gradient ${i}`);
      });
    }
  });
}

describe('FitNet descriptor', () => {
  it('sizes the connector from the tapped shapes and trains through live variables', async () => {
    await tf.setBackend('native');
    const parts = fitnet.parts!(
      { student: { hint: [8, 8, 4] }, teacher: { hint: [4, 4, 6] } },
      {},
      { numExamples: 1, numClasses: 10, seed: 0 },
    );
    const w = convRegWeights(parts.connector);
    assert.deepEqual(w.kernel.shape, [3, 3, 4, 6]);
    assert.ok(w.kernel instanceof tf.Variable && w.gamma instanceof tf.Variable);
    assert.deepEqual(Array.from(await w.gamma.data()), [1, 1, 1, 1, 1, 1]);
    const same = fitnet.parts!(
      { student: { hint: [5, 5, 3] }, teacher: { hint: [5, 5, 7] } },
      {},
      { numExamples: 1, numClasses: 10, seed: 0 },
    );
    assert.deepEqual(convRegWeights(same.connector).kernel.shape, [1, 1, 3, 7]);
  });
  it('refuses a student map smaller than the teacher map, naming both', () => {
    assert.throws(
      () =>
        fitnet.parts!(
          { student: { hint: [4, 4, 4] }, teacher: { hint: [8, 8, 6] } },
          {},
          { numExamples: 1, numClasses: 10, seed: 0 },
        ),
      /fitnet: no connector for a student map \[4, 4, 4\] and a teacher map \[8, 8, 6\]/,
    );
  });
});
