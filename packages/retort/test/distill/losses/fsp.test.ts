import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { fsp, fspLoss } from '../../../src/distill/losses/fsp.js';
import { assertClose } from './golden.js';
import { BACKENDS, maps, methodCases } from './methods-golden.js';

interface FspCase {
  name: string;
  shapes: number[][];
  student: number[][];
  teacher: number[][];
  loss: number;
  grad_student: number[][];
}
const cases = methodCases<FspCase>('fsp');

for (const backend of BACKENDS) {
  describe(`FSP vs PyTorch (Yim et al. / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient w.r.t. every student map`, async () => {
        await tf.setBackend(backend);
        const s = maps(c.student, c.shapes);
        const t = maps(c.teacher, c.shapes);
        const f = (...xs: tf.Tensor[]) => fspLoss(xs as tf.Tensor4D[], t);
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(await g.data(), c.grad_student[i]!, `${c.name} d/d s${i}`);
      });
    }
  });
}

describe('FSP descriptor', () => {
  it('taps four maps per side and refuses unequal channel counts, naming the stage', () => {
    assert.equal(fsp.needs.taps?.student.length, 4);
    const a = [tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 3])] as tf.Tensor4D[];
    const b = [tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 5])] as tf.Tensor4D[];
    assert.throws(() => fspLoss(a, b), /fspLoss: stage 1 has 3 student and 5 teacher channels/);
  });
});
