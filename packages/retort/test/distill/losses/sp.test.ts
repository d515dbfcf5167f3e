import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { sp, spLoss } from '../../../src/distill/losses/sp.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases, type PairCase } from './methods-golden.js';

const cases = methodCases<PairCase>('sp');

for (const backend of BACKENDS) {
  describe(`SP vs PyTorch (Tung & Mori / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor(c.student, c.student_shape);
        const t = tf.tensor(c.teacher, c.teacher_shape);
        const f = (x: tf.Tensor) => spLoss(x, t);
        assertClose(await f(s).data(), [c.loss], `${c.name} loss`);
        assertClose(await tf.grad(f)(s).data(), c.grad_student, `${c.name} d/d student`);
      });
    }
  });
}

describe('SP descriptor', () => {
  it("taps 'feat' on both sides and rejects different batch sizes", () => {
    assert.deepEqual(sp.needs.taps, { student: ['feat'], teacher: ['feat'] });
    assert.throws(() => spLoss(tf.zeros([2, 3]), tf.zeros([3, 3])), /spLoss: .*\[2, 3\].*\[3, 3\]/);
  });
});
