import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { kdsvd, kdsvdLoss, symEig } from '../../../src/distill/losses/kdsvd.js';
import { assertClose } from './golden.js';
import { BACKENDS, maps, methodCases } from './methods-golden.js';

interface KdsvdCase {
  name: string;
  shapes: number[][];
  k: number;
  student: number[][];
  teacher: number[][];
  loss: number;
  grad_student: number[][];
}
const cases = methodCases<KdsvdCase>('kdsvd');

for (const backend of BACKENDS) {
  describe(`KDSVD vs PyTorch (Lee et al. / RepDistiller, eigh-based reference) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradient through the eigenvectors`, async () => {
        await tf.setBackend(backend);
        const s = maps(c.student, c.shapes);
        const t = maps(c.teacher, c.shapes);
        const f = (...xs: tf.Tensor[]) => kdsvdLoss(xs as tf.Tensor4D[], t, { k: c.k });
        assertClose(await f(...s).data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads(f)(s);
        for (const [i, g] of grads.entries())
          assertClose(await g.data(), c.grad_student[i]!, `${c.name} d/d s${i}`);
      });
    }
  });
}

describe('symEig', () => {
  it('reconstructs A = V diag(l) V^T with orthonormal V, values descending', async () => {
    const x = tf.randomNormal([2, 6, 4], 0, 1, 'float32', 3);
    const a = tf.matMul(x, x, true, false) as tf.Tensor3D;
    const { values, vectors } = symEig(a);
    const rec = tf.matMul(tf.mul(vectors, tf.expandDims(values, 1)), vectors, false, true);
    assertClose(await rec.data(), await a.data(), 'reconstruction');
    const eye = tf.matMul(vectors, vectors, true, false);
    assertClose(await eye.data(), await tf.stack([tf.eye(4), tf.eye(4)]).data(), 'orthonormal');
    const v = await values.data();
    assert.ok(v[0]! >= v[1]! && v[1]! >= v[2]! && v[2]! >= v[3]!);
  });

  it('the eigenvalue gradient is v v^T (d l_j / d A = v_j v_j^T)', async () => {
    const x = tf.randomNormal([1, 5, 3], 0, 1, 'float32', 4);
    const a = tf.matMul(x, x, true, false) as tf.Tensor3D;
    const g = tf.grad((m: tf.Tensor) => tf.sum(tf.slice(symEig(m as tf.Tensor3D).values, [0, 0], [1, 1])))(a);
    const v0 = tf.slice(symEig(a).vectors, [0, 0, 0], [1, 3, 1]);
    assertClose(await g.data(), await tf.matMul(v0, v0, false, true).data(), 'd l0 / d A');
  });
});

describe('KDSVD descriptor', () => {
  it('k = 1 by default; equal channel counts required, naming the layer', () => {
    assert.deepEqual(kdsvd.schema.parse({}), { k: 1 });
    const a = [tf.zeros([2, 3, 3, 2]), tf.zeros([2, 3, 3, 3])] as tf.Tensor4D[];
    const b = [tf.zeros([2, 3, 3, 2]), tf.zeros([2, 3, 3, 4])] as tf.Tensor4D[];
    assert.throws(() => kdsvdLoss(a, b, { k: 1 }), /kdsvdLoss: layer 1 has 3 student and 4 teacher channels/);
  });
});
