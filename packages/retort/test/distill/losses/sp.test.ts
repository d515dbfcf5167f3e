import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { sp, spLoss } from '../../../src/distill/losses/sp.js';
import { assertClose } from './golden.js';
import { BACKENDS, lossContext, type PairCase, relationCases, retortLayout } from './relation-golden.js';

const cases = relationCases<PairCase>('sp');

function load(c: PairCase) {
  return {
    s: retortLayout(c.student, c.student_shape),
    t: retortLayout(c.teacher, c.teacher_shape),
    gs: retortLayout(c.grad_student, c.student_shape),
  };
}

for (const backend of BACKENDS) {
  describe(`SP vs PyTorch (Tung & Mori / RepDistiller's Similarity) on ${backend}`, () => {
    for (const c of cases) {
      // NHWC maps flatten in another order than PyTorch's NCHW; the Gram matrix does not see it.
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const { s, t, gs } = load(c);
        const f = (x: tf.Tensor) => spLoss(x, t);
        const value = f(s);
        const g = tf.grad(f)(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await g.data(), await gs.data(), `${c.name} d/d student`);
        tf.dispose([s, t, gs, value, g]);
      });
    }

    it('the teacher gets no gradient, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const { s, t } = load(cases[0]!);
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => spLoss(s, x))(t);
      assert.equal(Math.max(...Array.from(await g.data(), Math.abs)), 0);
      g.dispose();
      tf.dispose(spLoss(s, t));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t]);
    });
  });
}

describe('SP descriptor', () => {
  it('no parameters: {} parses, unknown keys fail', () => {
    assert.deepEqual(sp.schema.parse({}), {});
    assert.throws(() => parseOrThrow(sp.schema, { p: 2 }, 'exp.yaml losses[1]'), /unknown key 'p'/);
  });

  it("taps 'feat' on both sides, no parts; the descriptor's loss is the fixture's", async () => {
    await tf.setBackend('native');
    assert.deepEqual(sp.needs, { taps: { student: ['feat'], teacher: ['feat'] } });
    assert.equal(sp.parts, undefined);
    const c = cases[0]!;
    const { s, t, gs } = load(c);
    const sv = tf.variable(s);
    const { value, grads } = tf.variableGrads(() =>
      sp.loss(lossContext(sp.schema.parse({}), { feat: sv }, { feat: t }, {})),
    );
    assertClose(await value.data(), [c.loss], 'descriptor loss');
    assertClose(await grads[sv.name]!.data(), await gs.data(), 'descriptor d/d student');
    tf.dispose([s, t, gs, sv, value, ...Object.values(grads)]);
  });

  it('bad inputs name the method and the shapes', () => {
    assert.throws(
      () => spLoss(tf.zeros([2, 3]), tf.zeros([3, 3])),
      /spLoss: expected student and teacher features \[N, \.\.\.\] with one batch size N >= 1, got student \[2, 3\] and teacher \[3, 3\]/,
    );
    assert.throws(
      () => spLoss(tf.zeros([4]), tf.zeros([4])),
      /spLoss: .*got student \[4\] and teacher \[4\]/,
    );
  });
});
