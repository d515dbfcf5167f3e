import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { centroidGradients, decode, kmeans } from '../../src/compress/cluster.js';
import { chooseRank, factorize, svd } from '../../src/compress/lowrank.js';

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  });
}

/** ||W - A B||_F for row-major W [rows, cols], A [rows, r], B [r, cols]. */
function residual(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  rows: number,
  cols: number,
  r: number,
): number {
  let e = 0;
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += a[i * r + k]! * b[k * cols + j]!;
      e += (w[i * cols + j]! - s) ** 2;
    }
  return Math.sqrt(e);
}

describe('low-rank factorization', () => {
  it('the reconstruction error equals sqrt(sum of the dropped s^2), for every rank', () => {
    const rows = 12;
    const cols = 7;
    const w = rand(rows * cols, 1);
    const d = svd(w, rows, cols);
    for (let i = 1; i < d.s.length; i++) assert.ok(d.s[i - 1]! >= d.s[i]!);
    for (let r = 1; r <= cols; r++) {
      const f = factorize(w, d, r);
      const got = residual(w, f.a, f.b, rows, cols, r);
      assert.ok(Math.abs(got - f.error) <= 1e-4 * Math.max(1, f.error), `rank ${r}: ${got} vs ${f.error}`);
    }
    assert.ok(factorize(w, d, cols).error < 1e-6);
  });

  it('a rank-2 matrix: the energy rule picks 2; the size rule bounds the weights', () => {
    const rows = 10;
    const cols = 6;
    const u = rand(rows * 2, 2);
    const v = rand(2 * cols, 3);
    const w = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) w[i * cols + j] = u[i * 2]! * v[j]! + u[i * 2 + 1]! * v[cols + j]!;
    const d = svd(w, rows, cols);
    assert.equal(chooseRank(d, { energy: 0.999999 }), 2);
    const r = chooseRank(d, { sizeFraction: 0.5 });
    assert.ok(r * (rows + cols) <= 0.5 * rows * cols && (r + 1) * (rows + cols) > 0.5 * rows * cols);
    assert.throws(() => chooseRank(d, { energy: 1.5 }), /energy must be in \(0, 1\]/);
  });

  it('conv kernels factorize into k x k with r filters then 1 x 1', () => {
    // A [k, k, Cin, Cout] kernel read as a (k*k*Cin) x Cout matrix: A is the k x k conv with r
    // filters, B the 1 x 1 conv from r to Cout; at full rank their product is the kernel.
    const [kh, kw, cin, cout] = [3, 3, 4, 5];
    const rows = kh * kw * cin;
    const k = rand(rows * cout, 4);
    const d = svd(k, rows, cout);
    const full = factorize(k, d, chooseRank(d, { energy: 1 }));
    assert.equal(full.a.length, rows * 5);
    assert.equal(full.b.length, 5 * cout);
    assert.ok(full.error < 1e-5);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cout; j++) {
        let s = 0;
        for (let r = 0; r < 5; r++) s += full.a[i * 5 + r]! * full.b[r * cout + j]!;
        assert.ok(Math.abs(s - k[i * cout + j]!) < 1e-4, `(${i}, ${j})`);
      }
    const r = chooseRank(d, { sizeFraction: 0.6 });
    assert.ok(r < 5 && factorize(k, d, r).error > 0);
  });
});

describe('k-means weight sharing', () => {
  it('finds well-separated centres; at most k distinct values after decoding', () => {
    const x = new Float32Array(300);
    const centres = [-2, 0.5, 3];
    const noise = rand(300, 5, -0.05, 0.05);
    for (let i = 0; i < 300; i++) x[i] = centres[i % 3]! + noise[i]!;
    const c = kmeans(x, 3, { seed: 1 });
    const sorted = Array.from(c.centroids).sort((a, b) => a - b);
    for (const [i, m] of centres.entries())
      assert.ok(Math.abs(sorted[i]! - m) < 0.01, `centre ${m}: ${sorted[i]}`);
    assert.ok(new Set(decode(c)).size <= 3);
  });

  it('k-means++ and Lloyd never end worse than random initial centres', () => {
    const x = rand(2000, 6);
    const pp = kmeans(x, 16, { seed: 2 });
    const rnd = kmeans(x, 16, { init: rand(16, 7), iterations: 0 });
    assert.ok(pp.inertia <= rnd.inertia);
  });

  it('centroid gradients sum the gradients of the weights sharing them', () => {
    const c = { centroids: Float32Array.of(0, 1), indices: Uint16Array.of(0, 1, 1, 0), inertia: 0 };
    assert.deepEqual(Array.from(centroidGradients([1, 2, 3, 4], c)), [5, 5]);
    assert.throws(() => kmeans(Float32Array.of(1, 2), 3), /2 weights cannot form 3 clusters/);
  });
});
