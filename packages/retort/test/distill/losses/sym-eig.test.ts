import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { symEig } from '../../../src/distill/losses/sym-eig.js';
import { assertClose } from './golden.js';
import { BACKENDS } from './relation-golden.js';

/** Gram matrices X^T X of [B, rows, C] post-ReLU-like data. */
const grams = (b: number, rows: number, c: number, scale: number, seed: number) =>
  tf.tidy(() => {
    const x = tf.mul(tf.relu(tf.randomNormal([b, rows, c], 0.2, 1, 'float32', seed)), scale);
    return tf.matMul(x, x, true, false) as tf.Tensor3D;
  });

for (const backend of BACKENDS) {
  describe(`symEig on ${backend}`, () => {
    for (const [rows, c, scale] of [
      [6, 4, 1],
      [49, 64, 1], // a rank-deficient Gram, as KDSVD's last ResNet stage on 28 x 28 inputs
      [20, 8, 1e3],
      [20, 8, 1e-3],
    ] as const) {
      it(`A = V diag(l) V^T with orthonormal V, values descending (${rows} x ${c}, scale ${scale})`, async () => {
        await tf.setBackend(backend);
        const a = grams(2, rows, c, scale, 3);
        const { values, vectors } = symEig(a);
        const rec = tf.matMul(tf.mul(vectors, tf.expandDims(values, 1)), vectors, false, true);
        assertClose(await rec.data(), await a.data(), 'reconstruction');
        const eye = tf.matMul(vectors, vectors, true, false);
        assertClose(await eye.data(), await tf.stack([tf.eye(c), tf.eye(c)]).data(), 'orthonormal');
        const v = await values.data();
        for (let i = 0; i + 1 < c; i++) assert.ok(v[i]! >= v[i + 1]!, `values ${v[i]} then ${v[i + 1]}`);
        // The sign rule: each vector's largest-magnitude entry is positive.
        const vd = await vectors.data();
        for (let m = 0; m < 2 * c; m++) {
          const [bi, col] = [Math.floor(m / c), m % c];
          let big = 0;
          for (let r = 0; r < c; r++) {
            const x = vd[bi * c * c + r * c + col]!;
            if (Math.abs(x) > Math.abs(big)) big = x;
          }
          assert.ok(big > 0, `vector ${col} of matrix ${bi}: largest entry ${big}`);
        }
        tf.dispose([a, values, vectors, rec, eye]);
      });
    }

    it('d l_j / d A = v_j v_j^T, and the vector gradient matches central differences', async () => {
      await tf.setBackend(backend);
      const a = grams(1, 7, 4, 1, 4);
      const g = tf.grad((m: tf.Tensor) => tf.sum(tf.slice(symEig(m as tf.Tensor3D).values, [0, 1], [1, 1])))(
        a,
      );
      const { vectors } = symEig(a);
      const v1 = tf.slice(vectors, [0, 0, 1], [1, 4, 1]);
      assertClose(await g.data(), await tf.matMul(v1, v1, false, true).data(), 'd l1 / d A');
      // A symmetric perturbation E: <dL/dA, E> against (L(A + hE) - L(A - hE)) / 2h, in float32 with
      // a probe loss smooth in the top two vectors.
      const w = tf.randomNormal([1, 4, 2], 0, 1, 'float32', 9);
      const loss = (m: tf.Tensor) =>
        tf.sum(tf.mul(tf.slice(symEig(m as tf.Tensor3D).vectors, [0, 0, 0], [1, 4, 2]), w));
      const ga = tf.grad(loss)(a);
      const e0 = tf.randomNormal([1, 4, 4], 0, 1, 'float32', 10);
      const e = tf.add(e0, tf.transpose(e0, [0, 2, 1]));
      const h = 1e-2;
      const fd =
        ((await loss(tf.add(a, tf.mul(e, h))).data())[0]! -
          (await loss(tf.sub(a, tf.mul(e, h))).data())[0]!) /
        (2 * h);
      const an = (await tf.sum(tf.mul(ga, e)).data())[0]!;
      assert.ok(Math.abs(fd - an) <= 1e-3 * Math.max(1, Math.abs(an)), `analytic ${an} vs differences ${fd}`);
    });
  });
}

describe('symEig inputs', () => {
  it('refuses non-square matrices, naming the shape', () => {
    assert.throws(
      () => symEig(tf.zeros([1, 3, 4]) as tf.Tensor3D),
      /symEig: expected square matrices \[B, C, C\], got \[1, 3, 4\]/,
    );
  });
});
