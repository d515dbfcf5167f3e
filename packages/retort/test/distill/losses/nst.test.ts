import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { nst, nstLoss } from '../../../src/distill/losses/nst.js';
import { BACKENDS, featureCases, lossContext, nhwcMaps } from './feature-golden.js';
import { assertClose } from './golden.js';

/** Stage maps NCHW. */
interface NstCase {
  name: string;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  loss: number;
  grad_student: number[][];
}
const cases = featureCases<NstCase>('nst');

for (const backend of BACKENDS) {
  describe(`NST vs PyTorch (Huang & Wang / RepDistiller's NSTLoss) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient w.r.t. every student map`, async () => {
        await tf.setBackend(backend);
        const s = nhwcMaps(c.student, c.student_shapes);
        const t = nhwcMaps(c.teacher, c.teacher_shapes);
        const want = nhwcMaps(c.grad_student, c.student_shapes);
        const f = (...xs: tf.Tensor[]) => nstLoss(xs as tf.Tensor4D[], t);
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(await g.data(), await want[i]!.data(), `${c.name} d / d s${i}`);
      });
    }
  });
}

describe('NST descriptor', () => {
  it('has no parameters, taps three stages on both sides, no parts', () => {
    assert.deepEqual(nst.schema.parse({}), {});
    assert.throws(() => nst.schema.parse({ kernel: 'rbf' }));
    assert.deepEqual(nst.needs.taps, {
      student: ['stage1', 'stage2', 'stage3'],
      teacher: ['stage1', 'stage2', 'stage3'],
    });
    assert.equal(nst.parts, undefined);
  });

  it('loss through the descriptor equals PyTorch (three stages: the pair terms summed)', async () => {
    await tf.setBackend('native');
    const [a, b, d] = cases.map((c) => ({
      s: nhwcMaps(c.student, c.student_shapes)[0]!,
      t: nhwcMaps(c.teacher, c.teacher_shapes)[0]!,
    }));
    const v = nst.loss(
      lossContext(
        {},
        { stage1: a!.s, stage2: b!.s, stage3: d!.s },
        { stage1: a!.t, stage2: b!.t, stage3: d!.t },
        {},
      ),
    );
    const want = await nstLoss([a!.s, b!.s, d!.s], [a!.t, b!.t, d!.t]).data();
    assertClose(await v.data(), want, 'descriptor');
    // Cases 2 and 3 are single pairs, so their PyTorch values are two of the three terms.
    const first = await nstLoss([a!.s], [a!.t]).data();
    assertClose(await v.data(), [first[0]! + cases[1]!.loss + cases[2]!.loss], 'descriptor vs PyTorch');
  });

  it('is zero for identical maps', async () => {
    await tf.setBackend('native');
    const x = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
    assert.ok(Math.abs((await nstLoss([x], [x]).data())[0]!) < 1e-6);
  });

  it('rejects unequal numbers of maps and mismatched batches, naming the shapes', () => {
    assert.throws(() => nstLoss([tf.zeros([1, 2, 2, 1])] as tf.Tensor4D[], []), /nstLoss: expected as many/);
    assert.throws(
      () => nstLoss([tf.zeros([2, 4, 4, 3])], [tf.zeros([3, 4, 4, 3])]),
      /nstLoss: .*\[2, 4, 4, 3\].*\[3, 4, 4, 3\]/,
    );
  });
});
