import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { parseOrThrow } from '../../../src/config/errors.js';
import { kd, kdLoss, kdSchema } from '../../../src/distill/losses/kd.js';
import { assertClose, lossFixture } from './golden.js';

interface KdCase {
  name: string;
  T: number;
  N: number;
  K: number;
  student: number[];
  teacher: number[];
  loss: number;
  grad_student: number[];
}
const fx = { kd: lossFixture<KdCase[]>('kd') };

function ctxFor(s: tf.Tensor2D, t: tf.Tensor2D, config: { T: number }) {
  const none = {} as Readonly<Record<never, tf.Tensor>>;
  return {
    config,
    student: { logits: s, features: none },
    teacher: { logits: t, features: none },
    labels: tf.zeros([s.shape[0]], 'int32') as tf.Tensor1D,
    epoch: 0,
    indices: new Uint32Array(s.shape[0]),
    parts: {},
  };
}

for (const backend of ['cpu', 'native']) {
  describe(`kd loss vs PyTorch on ${backend}`, () => {
    for (const c of fx.kd) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor2d(c.student, [c.N, c.K]);
        const t = tf.tensor2d(c.teacher, [c.N, c.K]);
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) => kdLoss(x, t, { T: c.T }))(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grad.data(), c.grad_student, `${c.name} d/d student`);
        tf.dispose([s, t, value, grad]);
      });
    }

    it('the descriptor with default config (T = 4) gives the pure function value', async () => {
      await tf.setBackend(backend);
      const c = fx.kd.find((k) => k.name === 'k10')!;
      assert.equal(c.T, 4);
      const s = tf.tensor2d(c.student, [c.N, c.K]);
      const t = tf.tensor2d(c.teacher, [c.N, c.K]);
      const ctx = ctxFor(s, t, kd.schema.parse({}));
      const loss = kd.loss(ctx);
      assertClose(await loss.data(), [c.loss], 'descriptor loss');
      tf.dispose([s, t, loss, ctx.labels]);
    });

    it('the teacher gets no gradient, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const s = tf.randomNormal([4, 10]) as tf.Tensor2D;
      const t = tf.randomNormal([4, 10]) as tf.Tensor2D;
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => kdLoss(s, x as tf.Tensor2D, { T: 4 }))(t);
      assert.deepEqual(Array.from(await g.data()), new Array(40).fill(0));
      g.dispose();
      tf.dispose(kdLoss(s, t, { T: 2 }));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t]);
    });

    it('a NaN logit makes the loss NaN (the trainer stops on it)', async () => {
      await tf.setBackend(backend);
      const s = tf.tensor2d([[0.1, Number.NaN, 0.3]]);
      const t = tf.tensor2d([[1, 2, 3]]);
      const loss = kdLoss(s, t, { T: 4 });
      assert.ok(Number.isNaN((await loss.data())[0]));
      tf.dispose([s, t, loss]);
    });
  });
}

describe('kd config and inputs', () => {
  it('defaults: T = 4', () => {
    assert.deepEqual(kdSchema.parse({}), { T: 4 });
    assert.deepEqual(kd.schema.parse({ T: 2 }), { T: 2 });
  });

  it('unknown keys and bad values fail, naming the key', () => {
    assert.throws(
      () => parseOrThrow(kd.schema, { T: 4, temperature: 2 }, 'exp.yaml losses[1]'),
      /exp\.yaml losses\[1\]: unknown key 'temperature' at \(top level\) \(valid keys: T\)/,
    );
    assert.throws(() => parseOrThrow(kd.schema, { T: 0 }, 'x'), /x: T: /);
  });

  it('mismatched logits are refused with both shapes', () => {
    const s = tf.zeros([2, 10]) as tf.Tensor2D;
    const t = tf.zeros([2, 100]) as tf.Tensor2D;
    assert.throws(
      () => kdLoss(s, t, { T: 4 }),
      /kdLoss: expected student and teacher logits of one shape \[N, K\].*got student \[2, 10\] and teacher \[2, 100\]/,
    );
    tf.dispose([s, t]);
  });

  it('declares teacher logits and its paper', () => {
    assert.deepEqual(kd.needs, { logits: true });
    assert.equal(kd.paper.year, 2015);
    assert.equal(kd.parts, undefined);
  });
});
