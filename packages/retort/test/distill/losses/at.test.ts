import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { at, atLoss } from '../../../src/distill/losses/at.js';
import { BACKENDS, featureCases, lossContext, nhwcMaps } from './feature-golden.js';
import { assertClose } from './golden.js';

/** Stage maps NCHW; p absent means the default 2. */
interface AtCase {
  name: string;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  p?: number;
  loss: number;
  grad_student: number[][];
}
const cases = featureCases<AtCase>('at');

for (const backend of BACKENDS) {
  describe(`AT vs PyTorch (Zagoruyko & Komodakis / RepDistiller's Attention) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient w.r.t. every student map`, async () => {
        await tf.setBackend(backend);
        const s = nhwcMaps(c.student, c.student_shapes);
        const t = nhwcMaps(c.teacher, c.teacher_shapes);
        const cfg = at.schema.parse(c.p === undefined ? {} : { p: c.p });
        const f = (...xs: tf.Tensor[]) => atLoss(xs as tf.Tensor4D[], t, cfg);
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(
            await g.data(),
            await nhwcMaps(c.grad_student, c.student_shapes)[i]!.data(),
            `${c.name} d / d s${i}`,
          );
      });
    }
  });
}

describe('AT descriptor', () => {
  it('defaults p = 2, is strict, taps three stages on both sides', () => {
    assert.deepEqual(at.schema.parse({}), { p: 2 });
    assert.deepEqual(at.schema.parse({ p: 3 }), { p: 3 });
    assert.throws(() => at.schema.parse({ q: 1 }));
    assert.throws(() => at.schema.parse({ p: 0 }));
    assert.deepEqual(at.needs.taps, {
      student: ['stage1', 'stage2', 'stage3'],
      teacher: ['stage1', 'stage2', 'stage3'],
    });
    assert.equal(at.parts, undefined);
  });

  it('loss through the descriptor equals PyTorch on three stages', async () => {
    await tf.setBackend('native');
    // The two-stage case plus its first stage again as stage 3: the sum of the three pair terms.
    const c = cases[0]!;
    const [s1, s2] = nhwcMaps(c.student, c.student_shapes);
    const [t1, t2] = nhwcMaps(c.teacher, c.teacher_shapes);
    const first = atLoss([s1!], [t1!], { p: 2 });
    const v = at.loss(
      lossContext(
        { p: 2 },
        { stage1: s1!, stage2: s2!, stage3: s1! },
        { stage1: t1!, stage2: t2!, stage3: t1! },
        {},
      ),
    );
    assertClose(await v.data(), [c.loss + (await first.data())[0]!], 'descriptor');
  });

  it('names the shapes when batch sizes differ or maps are not [N, H, W, C]', () => {
    assert.throws(
      () => atLoss([tf.zeros([2, 4, 4, 3])], [tf.zeros([3, 4, 4, 3])], { p: 2 }),
      /atLoss: .*\[2, 4, 4, 3\].*\[3, 4, 4, 3\]/,
    );
    assert.throws(
      () => atLoss([tf.zeros([2, 16]) as unknown as tf.Tensor4D], [tf.zeros([2, 4, 4, 3])], { p: 2 }),
      /atLoss: expected feature maps \[N, H, W, C\].*\[2, 16\]/,
    );
    assert.throws(
      () => atLoss([tf.zeros([2, 4, 4, 3])], [], { p: 2 }),
      /atLoss: expected as many student as teacher maps/,
    );
  });
});
