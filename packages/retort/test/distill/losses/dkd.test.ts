import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { parseOrThrow } from '../../../src/config/errors.js';
import { type DkdConfig, dkd, dkdLoss, dkdWarmupFactor } from '../../../src/distill/losses/dkd.js';
import { assertClose, lossFixture } from './golden.js';

interface DkdCase {
  name: string;
  alpha: number;
  beta: number;
  T: number;
  warmup_factor: number;
  N: number;
  K: number;
  student: number[];
  teacher: number[];
  labels: number[];
  loss: number;
  grad_student: number[];
}
const fx = { dkd: lossFixture<DkdCase[]>('dkd') };

function inputs(c: DkdCase): [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D] {
  return [
    tf.tensor2d(c.student, [c.N, c.K]),
    tf.tensor2d(c.teacher, [c.N, c.K]),
    tf.tensor1d(c.labels, 'int32'),
  ];
}

function ctxFor(s: tf.Tensor2D, t: tf.Tensor2D, labels: tf.Tensor1D, config: DkdConfig, epoch: number) {
  const none = {} as Readonly<Record<never, tf.Tensor>>;
  return {
    config,
    student: { logits: s, features: none },
    teacher: { logits: t, features: none },
    labels,
    epoch,
    indices: new Uint32Array(s.shape[0]),
    parts: {},
  };
}

for (const backend of ['cpu', 'native']) {
  describe(`dkd loss vs PyTorch (mdistiller semantics) on ${backend}`, () => {
    for (const c of fx.dkd) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const [s, t, y] = inputs(c);
        const opts = { alpha: c.alpha, beta: c.beta, T: c.T, warmupFactor: c.warmup_factor };
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) => dkdLoss(x, t, y, opts))(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grad.data(), c.grad_student, `${c.name} d/d student`);
        tf.dispose([s, t, y, value, grad]);
      });
    }

    it('the descriptor: defaults (alpha 1, beta 8, T 4) and the warm-up by epoch', async () => {
      await tf.setBackend(backend);
      const full = fx.dkd.find((k) => k.name === 'k10')!;
      const first = fx.dkd.find((k) => k.name === 'k10_first_epoch')!;
      assert.deepEqual([full.alpha, full.beta, full.T, full.warmup_factor], [1, 8, 4, 1]);
      assert.equal(first.warmup_factor, 0.05);
      const [s, t, y] = inputs(full);
      const config = dkd.schema.parse({});
      for (const [epoch, want] of [
        [0, first.loss],
        [19, full.loss],
        [150, full.loss],
      ] as const) {
        const loss = dkd.loss(ctxFor(s, t, y, config, epoch));
        assertClose(await loss.data(), [want], `epoch ${epoch}`);
        loss.dispose();
      }
      tf.dispose([s, t, y]);
    });

    it('the teacher gets no gradient, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const s = tf.randomNormal([4, 10]) as tf.Tensor2D;
      const t = tf.randomNormal([4, 10]) as tf.Tensor2D;
      const y = tf.tensor1d([0, 3, 9, 3], 'int32');
      const opts = { alpha: 1, beta: 8, T: 4, warmupFactor: 1 };
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => dkdLoss(s, x as tf.Tensor2D, y, opts))(t);
      assert.deepEqual(Array.from(await g.data()), new Array(40).fill(0));
      g.dispose();
      tf.dispose(dkdLoss(s, t, y, opts));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t, y]);
    });

    it('a NaN logit makes the loss NaN (the trainer stops on it)', async () => {
      await tf.setBackend(backend);
      const s = tf.tensor2d([[0.1, Number.NaN, 0.3]]);
      const t = tf.tensor2d([[1, 2, 3]]);
      const y = tf.tensor1d([2], 'int32');
      const loss = dkdLoss(s, t, y, { alpha: 1, beta: 8, T: 4, warmupFactor: 1 });
      assert.ok(Number.isNaN((await loss.data())[0]));
      tf.dispose([s, t, y, loss]);
    });
  });
}

describe('dkd config and inputs', () => {
  it('defaults: alpha 1, beta 8, T 4, warm-up 20 epochs', () => {
    assert.deepEqual(dkd.schema.parse({}), { alpha: 1, beta: 8, T: 4, warmup: 20 });
    assert.deepEqual(dkd.schema.parse({ beta: 2, warmup: 0 }), { alpha: 1, beta: 2, T: 4, warmup: 0 });
  });

  it('unknown keys and bad values fail, naming the key', () => {
    assert.throws(
      () => parseOrThrow(dkd.schema, { alpha: 1, gamma: 8 }, 'exp.yaml losses[1]'),
      /unknown key 'gamma' at \(top level\) \(valid keys: alpha, beta, T, warmup\)/,
    );
    assert.throws(() => parseOrThrow(dkd.schema, { beta: -1 }, 'x'), /x: beta: /);
  });

  it('warm-up factor: mdistiller min(epoch / warmup, 1) with 1-based epochs', () => {
    assert.equal(dkdWarmupFactor(0, 20), 0.05);
    assert.equal(dkdWarmupFactor(9, 20), 0.5);
    assert.equal(dkdWarmupFactor(19, 20), 1);
    assert.equal(dkdWarmupFactor(40, 20), 1);
    assert.equal(dkdWarmupFactor(0, 0), 1);
  });

  it('refuses float labels, a label count that differs from N, and K < 2', () => {
    const s = tf.zeros([2, 10]) as tf.Tensor2D;
    const opts = { alpha: 1, beta: 8, T: 4, warmupFactor: 1 };
    const yf = tf.tensor1d([1, 2]);
    const y3 = tf.tensor1d([1, 2, 3], 'int32');
    assert.throws(() => dkdLoss(s, s, yf, opts), /dkdLoss: expected int32 labels \[2\], got float32 \[2\]/);
    assert.throws(() => dkdLoss(s, s, y3, opts), /got int32 \[3\]/);
    const one = tf.zeros([2, 1]) as tf.Tensor2D;
    const y0 = tf.tensor1d([0, 0], 'int32');
    assert.throws(() => dkdLoss(one, one, y0, opts), /K >= 2/);
    tf.dispose([s, yf, y3, one, y0]);
  });

  it('declares teacher logits and its paper', () => {
    assert.deepEqual(dkd.needs, { logits: true });
    assert.deepEqual([dkd.paper.venue, dkd.paper.year], ['CVPR', 2022]);
  });
});
