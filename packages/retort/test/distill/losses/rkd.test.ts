import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { rkd, rkdLoss, rkdTerms } from '../../../src/distill/losses/rkd.js';
import { assertClose } from './golden.js';
import { BACKENDS, lossContext, type PairCase, relationCases, retortLayout } from './relation-golden.js';

/** terms: the unweighted distance and angle losses. */
const cases = relationCases<PairCase & { terms: [number, number] }>('rkd');
const defaults = rkd.schema.parse({});

function load(c: PairCase) {
  return {
    s: retortLayout(c.student, c.student_shape),
    t: retortLayout(c.teacher, c.teacher_shape),
    gs: retortLayout(c.grad_student, c.student_shape),
  };
}

for (const backend of BACKENDS) {
  describe(`RKD vs PyTorch (Park et al. / RepDistiller's RKDLoss) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value, distance and angle terms, gradient`, async () => {
        await tf.setBackend(backend);
        const { s, t, gs } = load(c);
        const terms = rkdTerms(s, t, defaults);
        assertClose(await terms.loss.data(), [c.loss], `${c.name} loss`);
        assertClose(await terms.distance.data(), [c.terms[0]], `${c.name} distance term`);
        assertClose(await terms.angle.data(), [c.terms[1]], `${c.name} angle term`);
        const g = tf.grad((x: tf.Tensor) => rkdLoss(x, t, defaults))(s);
        assertClose(await g.data(), await gs.data(), `${c.name} d/d student`);
        tf.dispose([s, t, gs, terms.loss, terms.distance, terms.angle, g]);
      });
    }

    it('the weights scale the terms; the teacher gets no gradient; nothing leaks', async () => {
      await tf.setBackend(backend);
      const c = cases[0]!;
      const { s, t } = load(c);
      const before = tf.memory().numTensors;
      const onlyDistance = rkdLoss(s, t, { wD: 1, wA: 0 });
      const onlyAngle = rkdLoss(s, t, { wD: 0, wA: 2 });
      assertClose(await onlyDistance.data(), [c.terms[0]], 'wD 1, wA 0');
      assertClose(await onlyAngle.data(), [2 * c.terms[1]], 'wD 0, wA 2');
      const g = tf.grad((x: tf.Tensor) => rkdLoss(s, x, defaults))(t);
      assert.equal(Math.max(...Array.from(await g.data(), Math.abs)), 0);
      tf.dispose([onlyDistance, onlyAngle, g]);
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t]);
    });
  });
}

describe('RKD descriptor', () => {
  it("defaults: the paper's wD 25 and wA 50; unknown keys and negative weights fail", () => {
    assert.deepEqual(defaults, { wD: 25, wA: 50 });
    assert.throws(() => parseOrThrow(rkd.schema, { w_d: 25 }, 'exp.yaml losses[1]'), /unknown key 'w_d'/);
    assert.throws(() => rkd.schema.parse({ wA: -1 }));
  });

  it("taps 'feat' on both sides, no parts; the descriptor's loss is the fixture's", async () => {
    await tf.setBackend('native');
    assert.deepEqual(rkd.needs, { taps: { student: ['feat'], teacher: ['feat'] } });
    assert.equal(rkd.parts, undefined);
    const c = cases[2]!; // maps
    const { s, t, gs } = load(c);
    const sv = tf.variable(s);
    const { value, grads } = tf.variableGrads(() =>
      rkd.loss(lossContext(defaults, { feat: sv }, { feat: t }, {})),
    );
    assertClose(await value.data(), [c.loss], 'descriptor loss');
    assertClose(await grads[sv.name]!.data(), await gs.data(), 'descriptor d/d student');
    tf.dispose([s, t, gs, sv, value, ...Object.values(grads)]);
  });

  it('bad inputs name the method and the shapes', () => {
    assert.throws(
      () => rkdLoss(tf.zeros([1, 3]), tf.zeros([1, 3]), defaults),
      /rkdLoss: expected student and teacher features \[N, \.\.\.\] with one batch size N >= 2, got student \[1, 3\] and teacher \[1, 3\]/,
    );
    assert.throws(
      () => rkdLoss(tf.zeros([4, 3]), tf.zeros([5, 3]), defaults),
      /rkdLoss: .*\[4, 3\].*\[5, 3\]/,
    );
  });
});
