import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { tfKd, tfKdLoss, tfKdSchema } from '../../../src/distill/losses/tf-kd.js';
import { lossRegistry } from '../../../src/distill/registry.js';
import { assertClose, BACKENDS, lossFixture } from './golden.js';

interface TfKdCase {
  name: string;
  a: number;
  T: number;
  N: number;
  K: number;
  student: number[];
  labels: number[];
  loss: number;
  grad_student: number[];
}
const cases = lossFixture<TfKdCase[]>('tfkd');

for (const backend of BACKENDS) {
  describe(`tf-kd loss vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor2d(c.student, [c.N, c.K]);
        const y = tf.tensor1d(c.labels, 'int32');
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor2D) => tfKdLoss(x, y, { a: c.a, T: c.T }))(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grad.data(), c.grad_student, `${c.name} d/d student`);
        tf.dispose([s, y, value, grad]);
      });
    }
  });
}

describe('tf-kd descriptor', () => {
  it('is registered, needs no teacher, defaults a = 0.9 and T = 1, refuses a = 1', () => {
    assert.equal(lossRegistry.get('tf-kd'), tfKd);
    assert.deepEqual(tfKd.needs, {});
    assert.deepEqual(parseOrThrow(tfKdSchema, {}, 'x'), { a: 0.9, T: 1 });
    assert.throws(() => parseOrThrow(tfKdSchema, { a: 1 }, 'losses[0] (tf-kd)'), /a/);
    assert.throws(() => parseOrThrow(tfKdSchema, { alpha: 0.5 }, 'losses[0] (tf-kd)'), /alpha/);
  });
  it('labels that do not match the rows are refused', () => {
    assert.throws(
      () => tfKdLoss(tf.zeros([3, 4]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'), { a: 0.9, T: 1 }),
      /2 labels for 3 rows/,
    );
  });
});
