/**
 * RetortSymEig / RetortSymEigGrad: the JS cpu kernels and the native ones against
 * torch.linalg.eigh in float64 (fixtures/symeig.json, made by fixtures/make_symeig_fixture.py),
 * native against JS, and the properties that hold whatever the reference: A = V diag(l) V^T,
 * orthonormal V, descending values, the sign rule, d l_j / d A = v_j v_j^T, central differences.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { symEig } from '../src/index.js';
import { assertClose, checkParity, nativeRuns, randTensor, requireNative, runOn, tf } from './parity.js';

interface Case {
  name: string;
  shape: [number, number, number];
  m: number;
  x: number[];
  values: number[];
  vectors: number[];
  wl: number[];
  wv: number[];
  grad: number[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/symeig.json', import.meta.url), 'utf8')) as {
  cases: Case[];
};

/** values, vectors and the gradient of sum(wl * values) + sum(wv * vectors[:, :, :m]) (wl: [B, m]). */
function eigAll(x: tf.Tensor, wl: tf.Tensor, wv: tf.Tensor, m: number): tf.Tensor[] {
  const { values, vectors } = symEig(x);
  const g = tf.grad((a: tf.Tensor) => {
    const r = symEig(a);
    return tf.add(
      tf.sum(tf.mul(tf.slice(r.values, [0, 0], [-1, m]), wl)),
      tf.sum(tf.mul(tf.slice(r.vectors, [0, 0, 0], [-1, -1, m]), wv)),
    );
  })(x);
  return [values, vectors, g];
}

/** Gram matrices X^T X of [B, rows, C] post-ReLU-like data. */
const grams = (b: number, rows: number, c: number, scale: number, seed: number) =>
  tf.tidy(() => {
    const x = tf.mul(tf.relu(tf.add(randTensor([b, rows, c], seed, -1.5, 1.5), 0.2)), scale);
    return tf.matMul(x, x, true, false);
  });

describe('RetortSymEig', () => {
  for (const backend of ['cpu', 'native']) {
    it(`matches torch.linalg.eigh (float64) and its gradient on ${backend}`, () => {
      for (const c of fixture.cases) {
        const [b, n] = c.shape;
        const out = runOn(backend, () =>
          eigAll(
            tf.tensor(c.x, c.shape),
            tf.slice(tf.tensor(c.wl, [b, n]), [0, 0], [-1, c.m]),
            tf.tensor(c.wv, [b, n, c.m]),
            c.m,
          ),
        );
        assertClose(out[0]!.values, Float32Array.from(c.values), 1e-5, `${c.name}: values`);
        assertClose(out[1]!.values, Float32Array.from(c.vectors), 1e-5, `${c.name}: vectors`);
        assertClose(out[2]!.values, Float32Array.from(c.grad), 1e-5, `${c.name}: gradient`);
      }
    });

    for (const [rows, c, scale] of [
      [6, 4, 1],
      [49, 64, 1], // rank-deficient, as KDSVD's last ResNet stage on 28 x 28 inputs
      [20, 8, 1e3],
      [20, 8, 1e-3],
      [3, 1, 1],
    ] as const) {
      it(`A = V diag(l) V^T, V orthonormal, values descending, sign rule (${rows} x ${c}, scale ${scale}) on ${backend}`, () => {
        tf.setBackend(backend);
        tf.tidy(() => {
          const a = grams(2, rows, c, scale, 3);
          const { values, vectors } = symEig(a);
          const rec = tf.matMul(tf.mul(vectors, tf.expandDims(values, 1)), vectors, false, true);
          assertClose(rec.dataSync() as Float32Array, a.dataSync() as Float32Array, 1e-5, 'reconstruction');
          const eye = tf.matMul(vectors, vectors, true, false);
          assertClose(
            eye.dataSync() as Float32Array,
            tf.stack([tf.eye(c), tf.eye(c)]).dataSync() as Float32Array,
            1e-5,
            'orthonormal',
          );
          const v = values.dataSync();
          for (let i = 0; i + 1 < c; i++) assert.ok(v[i]! >= v[i + 1]!, `values ${v[i]} then ${v[i + 1]}`);
          const vd = vectors.dataSync();
          for (let k = 0; k < 2 * c; k++) {
            const [bi, col] = [Math.floor(k / c), k % c];
            let big = 0;
            for (let r = 0; r < c; r++) {
              const x = vd[bi * c * c + r * c + col]!;
              if (Math.abs(x) > Math.abs(big)) big = x;
            }
            assert.ok(big > 0, `vector ${col} of matrix ${bi}: largest entry ${big}`);
          }
        });
      });
    }

    it(`d l_j / d A = v_j v_j^T, and the vector gradient matches central differences on ${backend}`, () => {
      tf.setBackend(backend);
      tf.tidy(() => {
        const a = grams(1, 7, 4, 1, 4);
        const g = tf.grad((m: tf.Tensor) => tf.sum(tf.slice(symEig(m).values, [0, 1], [1, 1])))(a);
        const v1 = tf.slice(symEig(a).vectors, [0, 0, 1], [1, 4, 1]);
        assertClose(
          g.dataSync() as Float32Array,
          tf.matMul(v1, v1, false, true).dataSync() as Float32Array,
          1e-5,
          'd l1 / d A',
        );
        const w = randTensor([1, 4, 2], 9);
        const loss = (m: tf.Tensor) => tf.sum(tf.mul(tf.slice(symEig(m).vectors, [0, 0, 0], [1, 4, 2]), w));
        const ga = tf.grad(loss)(a);
        const e0 = randTensor([1, 4, 4], 10);
        const e = tf.add(e0, tf.transpose(e0, [0, 2, 1]));
        const h = 1e-2;
        const fd =
          (loss(tf.add(a, tf.mul(e, h))).dataSync()[0]! - loss(tf.sub(a, tf.mul(e, h))).dataSync()[0]!) /
          (2 * h);
        const an = tf.sum(tf.mul(ga, e)).dataSync()[0]!;
        assert.ok(
          Math.abs(fd - an) <= 1e-3 * Math.max(1, Math.abs(an)),
          `analytic ${an} vs differences ${fd}`,
        );
      });
    });
  }

  it('native equals JS (values, vectors, gradient) and runs natively', () => {
    requireNative();
    // Compared: the top m vectors. A rank-deficient Gram's null-space vectors are any orthonormal
    // basis of that space, so the two sides may rightly pick different ones there.
    const topM = (x: tf.Tensor, wl: tf.Tensor, wv: tf.Tensor, m: number) => {
      const [values, vectors, g] = eigAll(x, wl, wv, m) as [tf.Tensor, tf.Tensor, tf.Tensor];
      return [values, tf.slice(vectors, [0, 0, 0], [-1, -1, m]), g];
    };
    for (const [b, rows, n, m] of [
      [5, 30, 16, 4],
      [3, 49, 64, 4],
      [2, 40, 33, 33],
      [4, 2, 1, 1],
    ] as const) {
      // The same float32 matrices on both sides (a Gram made by each backend's matmul differs in
      // rounding, which moves the vectors of close values by more than the kernels differ).
      const a = runOn('cpu', () => grams(b, rows, n, 1, 21))[0]!.values;
      const ran = nativeRuns('RetortSymEig', () =>
        checkParity(`[${b}, ${n}, ${n}] top ${m}`, () =>
          topM(tf.tensor(a, [b, n, n]), randTensor([b, m], 22), randTensor([b, n, m], 23), m),
        ),
      );
      assert.ok(ran > 0, 'RetortSymEig ran on the JS fallback');
    }
    assert.ok(
      nativeRuns('RetortSymEigGrad', () =>
        runOn('native', () =>
          eigAll(grams(2, 5, 3, 1, 1), randTensor([2, 1], 2), randTensor([2, 3, 1], 3), 1),
        ),
      ) > 0,
      'RetortSymEigGrad ran on the JS fallback',
    );
  });

  it('refuses non-square matrices and NaN input, saying why', () => {
    for (const backend of ['cpu', 'native']) {
      tf.setBackend(backend);
      assert.throws(
        () => symEig(tf.zeros([1, 3, 4])),
        /symEig: expected square matrices \[B, n, n\], got \[1, 3, 4\]/,
      );
      assert.throws(() => symEig(tf.fill([1, 3, 3], Number.NaN)), /did not converge \(NaN or Inf input\?\)/);
    }
  });
});
