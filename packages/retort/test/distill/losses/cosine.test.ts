import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { parseOrThrow } from '../../../src/config/errors.js';
import { type CosineConfig, cosine, cosineLoss } from '../../../src/distill/losses/cosine.js';
import { assertClose, lossFixture } from './golden.js';

interface CosineCase {
  name: string;
  order: CosineConfig['order'];
  /** PyTorch layout: [N, C, H, W] maps or [N, D] vectors. */
  student_shape: number[];
  teacher_shape: number[];
  student: number[];
  teacher: number[];
  loss: number;
  grad_student: number[];
}
const fx = { cosine: lossFixture<CosineCase[]>('cosine') };

/** A fixture tensor in Retort's layout: NCHW maps become NHWC, vectors stay. */
function nhwc(data: number[], shape: number[]): tf.Tensor {
  const x = tf.tensor(data, shape);
  if (shape.length !== 4) return x;
  const y = tf.transpose(x, [0, 2, 3, 1]);
  x.dispose();
  return y;
}

for (const backend of ['cpu', 'native']) {
  describe(`cosine hidden-representation loss vs PyTorch (tutorial) on ${backend}`, () => {
    for (const c of fx.cosine) {
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const s = nhwc(c.student, c.student_shape);
        const t = nhwc(c.teacher, c.teacher_shape);
        const want = nhwc(c.grad_student, c.student_shape);
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => cosineLoss(x, t, { order: c.order }))(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await grad.data(), await want.data(), `${c.name} d/d student`);
        tf.dispose([s, t, want, value, grad]);
      });
    }

    it('the descriptor reads the "hidden" taps with the default order (nchw)', async () => {
      await tf.setBackend(backend);
      const c = fx.cosine.find((k) => k.name === 'maps_nchw')!;
      const s = nhwc(c.student, c.student_shape);
      const t = nhwc(c.teacher, c.teacher_shape);
      const n = c.student_shape[0]!;
      const logits = tf.zeros([n, 10]) as tf.Tensor2D;
      const labels = tf.zeros([n], 'int32') as tf.Tensor1D;
      const loss = cosine.loss({
        config: cosine.schema.parse({}),
        student: { logits, features: { hidden: s } },
        teacher: { logits, features: { hidden: t } },
        labels,
        epoch: 0,
        indices: new Uint32Array(n),
        parts: {},
      });
      assertClose(await loss.data(), [c.loss], 'descriptor loss');
      tf.dispose([s, t, logits, labels, loss]);
    });

    it('the teacher gets no gradient, and nothing leaks', async () => {
      await tf.setBackend(backend);
      const s = tf.randomNormal([2, 4, 4, 3]);
      const t = tf.randomNormal([2, 4, 4, 6]);
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => cosineLoss(s, x, { order: 'nchw' }))(t);
      assert.deepEqual(Array.from(await g.data()), new Array(2 * 4 * 4 * 6).fill(0));
      g.dispose();
      tf.dispose(cosineLoss(s, t, { order: 'nhwc' }));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t]);
    });

    it('a NaN feature makes the loss NaN (the trainer stops on it)', async () => {
      await tf.setBackend(backend);
      const s = tf.tensor2d([[0.1, Number.NaN, 0.3]]);
      const t = tf.tensor2d([[1, 2, 3, 4, 5, 6]]);
      const loss = cosineLoss(s, t, { order: 'nchw' });
      assert.ok(Number.isNaN((await loss.data())[0]));
      tf.dispose([s, t, loss]);
    });
  });
}

describe('cosine config and inputs', () => {
  it("defaults: the tutorial's flatten order", () => {
    assert.deepEqual(cosine.schema.parse({}), { order: 'nchw' });
    assert.deepEqual(cosine.schema.parse({ order: 'nhwc' }), { order: 'nhwc' });
  });

  it('unknown keys and bad values fail, naming the key', () => {
    assert.throws(
      () => parseOrThrow(cosine.schema, { margin: 0.1 }, 'exp.yaml losses[1]'),
      /unknown key 'margin' at \(top level\) \(valid keys: order\)/,
    );
    assert.throws(() => parseOrThrow(cosine.schema, { order: 'chwn' }, 'x'), /x: order: /);
  });

  it('refuses a teacher width that is not a multiple of the student width', () => {
    const s = tf.zeros([2, 4, 4, 3]);
    const t = tf.zeros([2, 4, 4, 5]);
    assert.throws(
      () => cosineLoss(s, t, { order: 'nchw' }),
      /cosineLoss: .*got student \[2, 4, 4, 3\] \(width 48\) and teacher \[2, 4, 4, 5\] \(width 80\)/,
    );
    tf.dispose([s, t]);
  });

  it('declares the "hidden" role on both networks and no parts', () => {
    assert.deepEqual(cosine.needs, { taps: { student: ['hidden'], teacher: ['hidden'] } });
    assert.equal(cosine.parts, undefined);
  });
});
