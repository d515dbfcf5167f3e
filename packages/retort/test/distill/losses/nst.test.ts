import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { nst, nstLoss } from '../../../src/distill/losses/nst.js';
import { assertClose } from './golden.js';
import { BACKENDS, type MultiCase, maps, methodCases } from './methods-golden.js';

const cases = methodCases<MultiCase>('nst');

for (const backend of BACKENDS) {
  describe(`NST vs PyTorch (Huang & Wang / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient w.r.t. every student map`, async () => {
        await tf.setBackend(backend);
        const s = maps(c.student, c.student_shapes);
        const t = maps(c.teacher, c.teacher_shapes);
        const f = (...xs: tf.Tensor[]) => nstLoss(xs as tf.Tensor4D[], t);
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(await g.data(), c.grad_student[i]!, `${c.name} d/d s${i}`);
      });
    }
  });
}

describe('NST descriptor', () => {
  it('has no parameters, taps three stages, and is zero for identical maps', async () => {
    await tf.setBackend('native');
    assert.deepEqual(nst.schema.parse({}), {});
    assert.throws(() => nst.schema.parse({ kernel: 'rbf' }));
    assert.equal(nst.needs.taps?.student.length, 3);
    const x = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
    assert.ok(Math.abs((await nstLoss([x], [x]).data())[0]!) < 1e-6);
  });
  it('rejects unequal numbers of maps', () => {
    assert.throws(() => nstLoss([tf.zeros([1, 2, 2, 1])] as tf.Tensor4D[], []), /nstLoss: expected as many/);
  });
});
