import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { logitMse, logitMseLoss, logitMseSchema } from '../../../src/distill/losses/logit-mse.js';
import { lossRegistry } from '../../../src/distill/registry.js';
import { assertClose, BACKENDS, lossFixture } from './golden.js';

interface LogitMseCase {
  name: string;
  N: number;
  K: number;
  reduction: 'mean' | 'sum-half';
  student: number[];
  teacher: number[];
  loss: number;
  grad_student: number[];
}
const cases = lossFixture<LogitMseCase[]>('logitmse');

for (const backend of BACKENDS) {
  describe(`logit-mse loss vs PyTorch on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value, the student's gradient, none for the teacher`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor2d(c.student, [c.N, c.K]);
        const t = tf.tensor2d(c.teacher, [c.N, c.K]);
        const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
          logitMseLoss(a as tf.Tensor2D, b as tf.Tensor2D, { reduction: c.reduction }),
        )([s, t]);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grads[0]!.data(), c.grad_student, `${c.name} d/d student`);
        assert.equal(tf.max(tf.abs(grads[1]!)).dataSync()[0], 0, 'the teacher is detached');
        tf.dispose([s, t, value, ...grads]);
      });
    }
  });
}

describe('logit-mse descriptor', () => {
  it('is registered, needs the teacher logits, defaults to the mean; strict', () => {
    assert.equal(lossRegistry.get('logit-mse'), logitMse);
    assert.deepEqual(logitMse.needs, { logits: true });
    assert.deepEqual(parseOrThrow(logitMseSchema, {}, 'x'), { reduction: 'mean' });
    assert.throws(
      () => parseOrThrow(logitMseSchema, { reduction: 'sum' }, 'losses[0] (logit-mse)'),
      /reduction/,
    );
  });
  it('logits of different shapes are refused', () => {
    assert.throws(
      () => logitMseLoss(tf.zeros([3, 4]) as tf.Tensor2D, tf.zeros([3, 5]) as tf.Tensor2D),
      /logitMseLoss/,
    );
  });
});
