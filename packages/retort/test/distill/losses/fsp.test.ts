import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { fsp, fspLoss, fspMatrices } from '../../../src/distill/losses/fsp.js';
import { BACKENDS, featureCases, lossContext, nhwcMaps } from './feature-golden.js';
import { assertClose } from './golden.js';

/** Consecutive maps NCHW, per side. */
interface FspCase {
  name: string;
  student_shapes: number[][];
  teacher_shapes: number[][];
  student: number[][];
  teacher: number[][];
  loss: number;
  grad_student: number[][];
}
const cases = featureCases<FspCase>('fsp');

for (const backend of BACKENDS) {
  describe(`FSP vs PyTorch (Yim et al. / RepDistiller's FSP) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient w.r.t. every student map`, async () => {
        await tf.setBackend(backend);
        const s = nhwcMaps(c.student, c.student_shapes);
        const t = nhwcMaps(c.teacher, c.teacher_shapes);
        const want = nhwcMaps(c.grad_student, c.student_shapes);
        const f = (...xs: tf.Tensor[]) => fspLoss(xs as tf.Tensor4D[], t);
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(await g.data(), await want[i]!.data(), `${c.name} d / d s${i}`);
      });
    }
  });
}

describe('FSP descriptor', () => {
  it('has no parameters and taps four maps per side (stem and three stages)', () => {
    assert.deepEqual(fsp.schema.parse({}), {});
    assert.throws(() => fsp.schema.parse({ beta: 50 }));
    assert.deepEqual(fsp.needs.taps, {
      student: ['stage0', 'stage1', 'stage2', 'stage3'],
      teacher: ['stage0', 'stage1', 'stage2', 'stage3'],
    });
    assert.equal(fsp.parts, undefined);
  });

  it('loss through the descriptor equals PyTorch', async () => {
    await tf.setBackend('native');
    const c = cases[0]!;
    const s = nhwcMaps(c.student, c.student_shapes);
    const t = nhwcMaps(c.teacher, c.teacher_shapes);
    const roles = (m: tf.Tensor[]) => ({ stage0: m[0]!, stage1: m[1]!, stage2: m[2]!, stage3: m[3]! });
    const v = fsp.loss(lossContext({}, roles(s), roles(t), {}));
    assertClose(await v.data(), [c.loss], 'descriptor');
  });

  it('FSP matrices are [N, C_top, C_bottom]', () => {
    const g = fspMatrices([tf.ones([2, 4, 4, 3]), tf.ones([2, 2, 2, 5])] as tf.Tensor4D[]);
    assert.deepEqual(g[0]!.shape, [2, 5, 3]);
  });

  it('refuses unequal channel counts, naming the map and both shapes', () => {
    const a = [tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 3])] as tf.Tensor4D[];
    const b = [tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 5])] as tf.Tensor4D[];
    assert.throws(
      () => fspLoss(a, b),
      /fspLoss: map 1 has 3 student and 5 teacher channels \(student \[1, 4, 4, 3\], teacher \[1, 4, 4, 5\]\)/,
    );
    assert.throws(
      () => fspLoss([a[0]!], [b[0]!]),
      /fspLoss: expected as many student as teacher maps \(>= 2\)/,
    );
  });
});
