import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { pkt, pktLoss } from '../../../src/distill/losses/pkt.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases, type PairCase } from './methods-golden.js';

const cases = methodCases<PairCase>('pkt');

for (const backend of BACKENDS) {
  describe(`PKT vs PyTorch (Passalis & Tefas / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor(c.student, c.student_shape);
        const t = tf.tensor(c.teacher, c.teacher_shape);
        const f = (x: tf.Tensor) => pktLoss(x, t, pkt.schema.parse({}));
        assertClose(await f(s).data(), [c.loss], `${c.name} loss`);
        assertClose(await tf.grad(f)(s).data(), c.grad_student, `${c.name} d/d student`);
      });
    }
  });
}

describe('PKT descriptor', () => {
  it('defaults eps 1e-7 and rejects unknown keys and different batch sizes', () => {
    assert.deepEqual(pkt.schema.parse({}), { eps: 1e-7 });
    assert.throws(() => pkt.schema.parse({ eps: 1e-7, T: 2 }));
    assert.throws(() => pktLoss(tf.zeros([2, 3]), tf.zeros([4, 3]), { eps: 1e-7 }), /pktLoss/);
  });
});
