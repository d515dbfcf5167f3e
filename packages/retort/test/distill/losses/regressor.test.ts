import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { parseOrThrow } from '../../../src/config/errors.js';
import {
  makeRegressor,
  regressor,
  regressorLoss,
  regressorWeights,
} from '../../../src/distill/losses/regressor.js';
import { assertClose, lossFixture } from './golden.js';

interface RegressorCase {
  name: string;
  /** PyTorch layouts: features NCHW, weight OIHW. */
  student_shape: [number, number, number, number];
  teacher_shape: [number, number, number, number];
  weight_shape: [number, number, number, number];
  student: number[];
  teacher: number[];
  weight: number[];
  bias: number[];
  loss: number;
  grad_student: number[];
  grad_weight: number[];
  grad_bias: number[];
}
const fx = { regressor: lossFixture<RegressorCase[]>('regressor') };

/** PyTorch layout -> Retort layout by a transpose: NCHW -> NHWC is [0, 2, 3, 1], OIHW -> HWIO [2, 3, 1, 0]. */
function relayout(data: number[], shape: number[], perm: number[]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), perm));
}
const NHWC = [0, 2, 3, 1];
const HWIO = [2, 3, 1, 0];

function load(c: RegressorCase) {
  return {
    s: relayout(c.student, c.student_shape, NHWC),
    t: relayout(c.teacher, c.teacher_shape, NHWC),
    kernel: relayout(c.weight, c.weight_shape, HWIO),
    bias: tf.tensor1d(c.bias),
    gs: relayout(c.grad_student, c.student_shape, NHWC),
    gk: relayout(c.grad_weight, c.weight_shape, HWIO),
  };
}

/** [H, W, C] of an NHWC tensor. */
const perExample = (x: tf.Tensor): number[] => x.shape.slice(1);

for (const backend of ['cpu', 'native']) {
  describe(`conv regressor + MSE vs PyTorch (tutorial) on ${backend}`, () => {
    for (const c of fx.regressor) {
      it(`${c.name}: value and gradients (student, kernel, bias)`, async () => {
        await tf.setBackend(backend);
        const { s, t, kernel, bias, gs, gk } = load(c);
        const f = (x: tf.Tensor, k: tf.Tensor, b: tf.Tensor) =>
          regressorLoss(x, t, { kernel: k as tf.Tensor4D, bias: b as tf.Tensor1D });
        const value = f(s, kernel, bias);
        const [dS, dK, dB] = tf.grads(f)([s, kernel, bias]);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await dS!.data(), await gs.data(), `${c.name} d/d student`);
        assertClose(await dK!.data(), await gk.data(), `${c.name} d/d kernel`);
        assertClose(await dB!.data(), c.grad_bias, `${c.name} d/d bias`);
        tf.dispose([s, t, kernel, bias, gs, gk, value, dS!, dK!, dB!]);
      });
    }

    it('the descriptor: parts from tapped shapes, loss through the part, variable gradients', async () => {
      await tf.setBackend(backend);
      const c = fx.regressor.find((k) => k.name === 'small')!;
      const { s, t, kernel, bias, gs, gk } = load(c);
      const config = regressor.schema.parse({});
      const shapes = { student: { hint: perExample(s) }, teacher: { hint: perExample(t) } };
      const parts = regressor.parts!(shapes, config, {
        numExamples: 1,
        numClasses: 10,
        batchSize: 8,
        seed: 0,
      });
      const w = regressorWeights(parts.regressor);
      w.kernel.assign(kernel);
      w.bias.assign(bias);
      const sv = tf.variable(s);
      const n = c.student_shape[0];
      const logits = tf.zeros([n, 10]) as tf.Tensor2D;
      const labels = tf.zeros([n], 'int32') as tf.Tensor1D;
      const { value, grads } = tf.variableGrads(() =>
        regressor.loss({
          config,
          student: { logits, features: { hint: sv } },
          teacher: { logits, features: { hint: t } },
          labels,
          epoch: 0,
          indices: new Uint32Array(n),
          parts,
        }),
      );
      // The part's two trainable weights are reached.
      assert.equal(parts.regressor.trainableWeights.length, 2);
      assert.deepEqual(Object.keys(grads).sort(), [sv.name, w.kernel.name, w.bias.name].sort());
      assertClose(await value.data(), [c.loss], 'descriptor loss');
      assertClose(await grads[sv.name]!.data(), await gs.data(), 'descriptor d/d student');
      assertClose(await grads[w.kernel.name]!.data(), await gk.data(), 'descriptor d/d kernel');
      assertClose(await grads[w.bias.name]!.data(), c.grad_bias, 'descriptor d/d bias');
      tf.dispose([s, t, kernel, bias, gs, gk, sv, logits, labels, value, ...Object.values(grads)]);
      parts.regressor.dispose();
    });

    it('the teacher gets no gradient, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const s = tf.randomNormal([2, 5, 5, 3]);
      const t = tf.randomNormal([2, 5, 5, 4]);
      const w = { kernel: tf.randomNormal([3, 3, 3, 4]) as tf.Tensor4D, bias: tf.zeros([4]) as tf.Tensor1D };
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => regressorLoss(s, x, w))(t);
      assert.deepEqual(Array.from(await g.data()), new Array(2 * 5 * 5 * 4).fill(0));
      g.dispose();
      tf.dispose(regressorLoss(s, t, w));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t, w.kernel, w.bias]);
    });

    it('a NaN feature makes the loss NaN (the trainer stops on it)', async () => {
      await tf.setBackend(backend);
      const s = tf.tensor4d([0.1, Number.NaN, 0.3, 0.4], [1, 2, 2, 1]);
      const t = tf.zeros([1, 2, 2, 2]);
      const w = { kernel: tf.ones([3, 3, 1, 2]) as tf.Tensor4D, bias: tf.zeros([2]) as tf.Tensor1D };
      const loss = regressorLoss(s, t, w);
      assert.ok(Number.isNaN((await loss.data())[0]));
      tf.dispose([s, t, w.kernel, w.bias, loss]);
    });
  });
}

describe('regressor config, parts and inputs', () => {
  it("defaults: the tutorial's 3x3 kernel", () => {
    assert.deepEqual(regressor.schema.parse({}), { kernelSize: 3 });
    assert.deepEqual(regressor.schema.parse({ kernelSize: 1 }), { kernelSize: 1 });
  });

  it('unknown keys and bad values fail, naming the key', () => {
    assert.throws(
      () => parseOrThrow(regressor.schema, { kernel: 3 }, 'exp.yaml losses[1]'),
      /unknown key 'kernel' at \(top level\) \(valid keys: kernelSize\)/,
    );
    assert.throws(() => parseOrThrow(regressor.schema, { kernelSize: 4 }, 'x'), /x: kernelSize: must be odd/);
  });

  it('the part maps [H, W, Cs] to [H, W, Ct], initialised like torch.nn.Conv2d', () => {
    const m = makeRegressor(
      { student: { hint: [8, 8, 16] }, teacher: { hint: [8, 8, 32] } },
      { kernelSize: 3 },
    );
    assert.deepEqual(m.outputs[0]!.shape, [null, 8, 8, 32]);
    const { kernel, bias } = regressorWeights(m);
    assert.deepEqual(kernel.shape, [3, 3, 16, 32]);
    // Uniform in +-1/sqrt(fan_in): 4608 kernel draws come within 1% of the bound, 32 bias draws
    // within half of it (each fails with probability below 1e-9).
    const bound = 1 / Math.sqrt(16 * 9);
    for (const [x, near] of [
      [kernel, 0.99],
      [bias, 0.5],
    ] as const) {
      const max = Math.max(...Array.from(x.dataSync(), Math.abs));
      assert.ok(max <= bound && max > near * bound, `init range ${max} vs bound ${bound}`);
    }
    m.dispose();
  });

  it('refuses taps of different spatial size, and mismatched tensors', () => {
    assert.throws(
      () =>
        makeRegressor({ student: { hint: [8, 8, 16] }, teacher: { hint: [4, 4, 32] } }, { kernelSize: 3 }),
      /regressor: the 'hint' taps must be feature maps \[H, W, C\] of one spatial size, got student \[8, 8, 16\] and teacher \[4, 4, 32\]/,
    );
    const s = tf.zeros([1, 4, 4, 3]);
    const t = tf.zeros([1, 4, 4, 5]);
    const w = { kernel: tf.zeros([3, 3, 3, 4]) as tf.Tensor4D, bias: tf.zeros([4]) as tf.Tensor1D };
    assert.throws(
      () => regressorLoss(s, t, w),
      /got student \[1, 4, 4, 3\], teacher \[1, 4, 4, 5\], kernel \[3, 3, 3, 4\]/,
    );
    tf.dispose([s, t, w.kernel, w.bias]);
  });

  it('declares the "hint" role and a trainable part', () => {
    assert.deepEqual(regressor.needs, { taps: { student: ['hint'], teacher: ['hint'] } });
    assert.equal(typeof regressor.parts, 'function');
  });
});
