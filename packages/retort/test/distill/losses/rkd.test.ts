import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { rkd, rkdLoss, rkdTerms } from '../../../src/distill/losses/rkd.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases, type PairCase } from './methods-golden.js';

const cases = methodCases<PairCase>('rkd');

for (const backend of BACKENDS) {
  describe(`RKD vs PyTorch (Park et al. / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value, distance and angle terms, gradient`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor(c.student, c.student_shape);
        const t = tf.tensor(c.teacher, c.teacher_shape);
        const cfg = rkd.schema.parse({});
        const terms = rkdTerms(s, t, cfg);
        assertClose(await terms.loss.data(), [c.loss], `${c.name} loss`);
        assertClose(
          [(await terms.distance.data())[0]!, (await terms.angle.data())[0]!],
          c.parts!,
          `${c.name} terms`,
        );
        assertClose(
          await tf
            .grad((x: tf.Tensor) => rkdLoss(x, t, cfg))(s)
            .data(),
          c.grad_student,
          `${c.name} d/d student`,
        );
      });
    }
  });
}

describe('RKD descriptor', () => {
  it('defaults wD 25, wA 50; needs two examples', () => {
    assert.deepEqual(rkd.schema.parse({}), { wD: 25, wA: 50 });
    assert.throws(() => rkdLoss(tf.zeros([1, 3]), tf.zeros([1, 3]), { wD: 25, wA: 50 }), /rkdLoss: .*N >= 2/);
  });
});
