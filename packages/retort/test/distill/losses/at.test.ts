import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { at, atLoss } from '../../../src/distill/losses/at.js';
import { assertClose } from './golden.js';
import { BACKENDS, type MultiCase, maps, methodCases } from './methods-golden.js';

const cases = methodCases<MultiCase>('at');

for (const backend of BACKENDS) {
  describe(`AT vs PyTorch (Zagoruyko & Komodakis / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient w.r.t. every student map`, async () => {
        await tf.setBackend(backend);
        const s = maps(c.student, c.student_shapes);
        const t = maps(c.teacher, c.teacher_shapes);
        const cfg = at.schema.parse({});
        const f = (...xs: tf.Tensor[]) => atLoss(xs as tf.Tensor4D[], t, cfg);
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(await g.data(), c.grad_student[i]!, `${c.name} d/d s${i}`);
      });
    }
  });
}

describe('AT descriptor', () => {
  it('defaults p = 2, taps three stages on both sides, loss equals the pure function', async () => {
    await tf.setBackend('native');
    assert.deepEqual(at.schema.parse({}), { p: 2 });
    assert.deepEqual(at.needs.taps, {
      student: ['stage1', 'stage2', 'stage3'],
      teacher: ['stage1', 'stage2', 'stage3'],
    });
    assert.throws(() => at.schema.parse({ q: 1 }));
    const c = cases[0]!;
    const [s1, s2] = maps(c.student, c.student_shapes);
    const [t1, t2] = maps(c.teacher, c.teacher_shapes);
    const feats = (a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => ({ stage1: a, stage2: b, stage3: d });
    const logits = tf.zeros([4, 10]) as tf.Tensor2D;
    const v = at.loss({
      config: { p: 2 },
      student: { logits, features: feats(s1!, s2!, s1!) },
      teacher: { logits, features: feats(t1!, t2!, t1!) },
      labels: tf.zeros([4], 'int32'),
      epoch: 0,
      indices: new Uint32Array(4),
      parts: {},
    });
    const ref = atLoss([s1!, s2!, s1!], [t1!, t2!, t1!], { p: 2 });
    assertClose(await v.data(), await ref.data(), 'descriptor');
  });

  it('names the shapes when batch sizes differ', () => {
    assert.throws(
      () => atLoss([tf.zeros([2, 4, 4, 3])], [tf.zeros([3, 4, 4, 3])], { p: 2 }),
      /atLoss: .*\[2, 4, 4, 3\].*\[3, 4, 4, 3\]/,
    );
  });
});
