import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { parseOrThrow } from '../../../src/config/errors.js';
import { kd, kdLoss, kdSchema } from '../../../src/distill/losses/kd.js';

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
const fx = JSON.parse(readFileSync(new URL('../../fixtures/losses.json', import.meta.url), 'utf8')) as {
  kd: KdCase[];
};

const TOL = 1e-5;

/**
 * Checks got against a PyTorch reference: the largest per-element |got - want| over the reference's
 * largest magnitude must be <= 1e-5. A reference that is zero (both inputs uniform: KL is exactly 0,
 * and so is its gradient) is held to an absolute 1e-7 instead, float32 rounding of O(1) terms.
 */
function assertClose(got: ArrayLike<number>, want: readonly number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  if (scale < 1e-12) assert.ok(err <= 1e-7, `${what}: ${err.toExponential(2)} from a zero reference`);
  else assert.ok(err / scale <= TOL, `${what}: relative error ${(err / scale).toExponential(2)}`);
}

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
