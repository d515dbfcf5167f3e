import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { pkt, pktLoss } from '../../../src/distill/losses/pkt.js';
import { assertClose } from './golden.js';
import { BACKENDS, lossContext, type PairCase, relationCases, retortLayout } from './relation-golden.js';

const cases = relationCases<PairCase>('pkt');
const defaults = pkt.schema.parse({});

function load(c: PairCase) {
  return {
    s: retortLayout(c.student, c.student_shape),
    t: retortLayout(c.teacher, c.teacher_shape),
    gs: retortLayout(c.grad_student, c.student_shape),
  };
}

for (const backend of BACKENDS) {
  describe(`PKT vs PyTorch (Passalis & Tefas / RepDistiller's PKT) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const { s, t, gs } = load(c);
        const f = (x: tf.Tensor) => pktLoss(x, t, defaults);
        const value = f(s);
        const g = tf.grad(f)(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await g.data(), await gs.data(), `${c.name} d/d student`);
        tf.dispose([s, t, gs, value, g]);
      });
    }

    it('the teacher gets no gradient, equal relations give zero, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const { s, t } = load(cases[0]!);
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => pktLoss(s, x, defaults))(t);
      assert.equal(Math.max(...Array.from(await g.data(), Math.abs)), 0);
      // A scaled copy has the same cosines: the KL vanishes (to float32 rounding).
      const same = tf.tidy(() => pktLoss(s, tf.mul(s, 3), defaults));
      assert.ok(Math.abs((await same.data())[0]!) < 1e-7);
      tf.dispose([g, same]);
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t]);
    });
  });
}

describe('PKT descriptor', () => {
  it("defaults: RepDistiller's eps 1e-7; unknown keys and bad values fail", () => {
    assert.deepEqual(defaults, { eps: 1e-7 });
    assert.deepEqual(pkt.schema.parse({ eps: 1e-6 }), { eps: 1e-6 });
    assert.throws(() => parseOrThrow(pkt.schema, { T: 2 }, 'exp.yaml losses[1]'), /unknown key 'T'/);
    assert.throws(() => pkt.schema.parse({ eps: 0 }));
  });

  it("taps 'feat' on both sides, no parts; the descriptor's loss is the fixture's", async () => {
    await tf.setBackend('native');
    assert.deepEqual(pkt.needs, { taps: { student: ['feat'], teacher: ['feat'] } });
    assert.equal(pkt.parts, undefined);
    const c = cases[0]!;
    const { s, t, gs } = load(c);
    const sv = tf.variable(s);
    const { value, grads } = tf.variableGrads(() =>
      pkt.loss(lossContext(defaults, { feat: sv }, { feat: t }, {})),
    );
    assertClose(await value.data(), [c.loss], 'descriptor loss');
    assertClose(await grads[sv.name]!.data(), await gs.data(), 'descriptor d/d student');
    tf.dispose([s, t, gs, sv, value, ...Object.values(grads)]);
  });

  it('bad inputs name the method and the shapes', () => {
    assert.throws(
      () => pktLoss(tf.zeros([2, 3]), tf.zeros([4, 3]), defaults),
      /pktLoss: expected student and teacher features \[N, \.\.\.\] with one batch size N >= 1, got student \[2, 3\] and teacher \[4, 3\]/,
    );
  });
});
