import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { vid, vidPairLoss, vidWeights } from '../../../src/distill/losses/vid.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases } from './methods-golden.js';

interface VidCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  student: number[];
  teacher: number[];
  w1: number[];
  w2: number[];
  w3: number[];
  alpha: number[];
  loss: number;
  grad_student: number[];
  grad_w1: number[];
  grad_w2: number[];
  grad_w3: number[];
  grad_alpha: number[];
}
const cases = methodCases<VidCase>('vid');
const shape4 = (s: number[]) => s as [number, number, number, number];

for (const backend of BACKENDS) {
  describe(`VID vs PyTorch (RepDistiller's VIDLoss) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student, three kernels, alpha)`, async () => {
        await tf.setBackend(backend);
        const [, , , cs] = c.student_shape as [number, number, number, number];
        const [, , , ct] = c.teacher_shape as [number, number, number, number];
        const s = tf.tensor4d(c.student, shape4(c.student_shape));
        const t = tf.tensor4d(c.teacher, shape4(c.teacher_shape));
        const w = [
          tf.tensor4d(c.w1, [1, 1, cs, ct]),
          tf.tensor4d(c.w2, [1, 1, ct, ct]),
          tf.tensor4d(c.w3, [1, 1, ct, ct]),
          tf.tensor1d(c.alpha),
        ];
        const f = (x: tf.Tensor, a: tf.Tensor, b: tf.Tensor, d: tf.Tensor, al: tf.Tensor) =>
          vidPairLoss(
            x as tf.Tensor4D,
            t,
            { w1: a as tf.Tensor4D, w2: b as tf.Tensor4D, w3: d as tf.Tensor4D, alpha: al as tf.Tensor1D },
            1e-5,
          );
        assertClose(
          await f(s, ...(w as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor])).data(),
          [c.loss],
          `${c.name} loss`,
        );
        const grads = tf.grads(f)([s, ...w]);
        const want = [c.grad_student, c.grad_w1, c.grad_w2, c.grad_w3, c.grad_alpha];
        for (const [i, g] of want.entries())
          assertClose(await grads[i]!.data(), g, `${c.name} gradient ${i}`);
      });
    }
  });
}

describe('VID descriptor', () => {
  it('one regressor per stage sized from the taps; variance starts at 5', async () => {
    await tf.setBackend('native');
    const cfg = vid.schema.parse({});
    assert.deepEqual(cfg, { initVariance: 5, eps: 1e-5 });
    const shapes = { stage1: [8, 8, 4], stage2: [4, 4, 8], stage3: [2, 2, 16] };
    const tshapes = { stage1: [8, 8, 6], stage2: [4, 4, 12], stage3: [2, 2, 24] };
    const parts = vid.parts!({ student: shapes, teacher: tshapes }, cfg, {
      numExamples: 1,
      numClasses: 10,
      seed: 0,
    });
    const w = vidWeights(parts.stage3);
    assert.deepEqual(w.w1.shape, [1, 1, 16, 24]);
    const variance = tf.add(tf.softplus(w.alpha), 1e-5);
    assertClose(await variance.data(), new Array(24).fill(5), 'initial variance');
  });
  it('names the channel mismatch', () => {
    const w = {
      w1: tf.zeros([1, 1, 3, 2]),
      w2: tf.zeros([1, 1, 2, 2]),
      w3: tf.zeros([1, 1, 2, 2]),
      alpha: tf.zeros([2]),
    } as never;
    assert.throws(
      () => vidPairLoss(tf.zeros([1, 2, 2, 4]), tf.zeros([1, 2, 2, 2]), w, 1e-5),
      /vidLoss: regressor maps 3 to 2 channels/,
    );
  });
});
