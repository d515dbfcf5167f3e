/**
 * RetortGatherRowsDot / RetortGatherRowsWeightedSum / RetortScatterRows: the JS cpu kernels against
 * tfjs's own gather + matMul (and its gradient) and against a row-by-row scatter; the native
 * kernels against the JS ones; bad indices and shapes named.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gatherRowsDot, scatterRows } from '../src/index.js';
import {
  assertClose,
  checkParity,
  nativeRuns,
  rand,
  randTensor,
  requireNative,
  runOn,
  tf,
} from './parity.js';

/** Seeded int32 indices in [0, m), with repeats. */
function indices(n: number, m: number, seed: number): Int32Array {
  return Int32Array.from(rand(n, seed, 0, m), (v) => Math.min(m - 1, Math.floor(v)));
}

/** The fused op and its gradients with respect to x and the table, for sum(w * out). */
function fused(m: number, d: number, n: number, k: number) {
  const idx = indices(n * k, m, 5);
  return () => {
    const table = randTensor([m, d], 1);
    const x = randTensor([n, d], 2);
    const w = randTensor([n, k], 3);
    const I = tf.tensor2d(idx, [n, k], 'int32');
    const out = gatherRowsDot(table, I, x);
    const [gt, gx] = tf.grads((t: tf.Tensor, a: tf.Tensor) => tf.sum(tf.mul(gatherRowsDot(t, I, a), w)))([
      table,
      x,
    ]);
    return [out, gx!, gt!];
  };
}

/** The same with tfjs's gather and matMul. */
function reference(m: number, d: number, n: number, k: number) {
  const idx = indices(n * k, m, 5);
  return () => {
    const table = randTensor([m, d], 1);
    const x = randTensor([n, d], 2);
    const w = randTensor([n, k], 3);
    const f = (t: tf.Tensor, a: tf.Tensor) =>
      tf.reshape(
        tf.matMul(tf.reshape(tf.gather(t, tf.tensor1d(idx, 'int32')), [n, k, d]), tf.reshape(a, [n, d, 1])),
        [n, k],
      );
    const out = f(table, x);
    const [gt, gx] = tf.grads((t: tf.Tensor, a: tf.Tensor) => tf.sum(tf.mul(f(t, a), w)))([table, x]);
    return [out, gx!, gt!];
  };
}

describe('RetortGatherRowsDot / WeightedSum', () => {
  for (const [m, d, n, k] of [
    [50, 16, 4, 9],
    [7, 3, 2, 1],
    [300, 128, 8, 65],
  ] as const) {
    it(`equals gather + matMul and its gradients (table [${m}, ${d}], indices [${n}, ${k}]) on cpu`, () => {
      const got = runOn('cpu', fused(m, d, n, k));
      const want = runOn('cpu', reference(m, d, n, k));
      for (const [i, what] of ['scores', 'd x', 'd table'].entries())
        assertClose(got[i]!.values, want[i]!.values, 1e-5, what);
    });
  }

  it('native equals JS and runs natively', () => {
    requireNative();
    for (const [m, d, n, k] of [
      [50, 16, 4, 9],
      [1000, 128, 16, 257],
    ] as const) {
      const ranDot = nativeRuns('RetortGatherRowsDot', () => {
        const ranSum = nativeRuns('RetortGatherRowsWeightedSum', () =>
          checkParity(`[${m}, ${d}] x [${n}, ${k}]`, fused(m, d, n, k)),
        );
        assert.ok(ranSum > 0, 'RetortGatherRowsWeightedSum ran on the JS fallback');
      });
      assert.ok(ranDot > 0, 'RetortGatherRowsDot ran on the JS fallback');
    }
  });

  it('bad indices and shapes are named', () => {
    for (const backend of ['cpu', 'native']) {
      tf.setBackend(backend);
      const t = tf.zeros([5, 3]);
      assert.throws(
        () => gatherRowsDot(t, tf.tensor2d([0, 5], [1, 2], 'int32'), tf.zeros([1, 3])),
        /index 5|out of range/,
      );
      assert.throws(
        () => gatherRowsDot(t, tf.tensor2d([0, 1], [1, 2], 'int32'), tf.zeros([2, 3])),
        /x must be \[1, 3\], got \[2, 3\]/,
      );
      assert.throws(
        () => gatherRowsDot(t, tf.tensor2d([0, 1], [1, 2]), tf.zeros([1, 3])),
        /indices must be int32/,
      );
    }
  });
});

describe('RetortScatterRows', () => {
  const m = 40;
  const d = 8;
  const idx = Int32Array.from([3, 17, 3, 39, 0]); // 3 twice: the later row wins
  const fn = () =>
    scatterRows(randTensor([m, d], 1), tf.tensor1d(idx, 'int32'), randTensor([idx.length, d], 2));

  it('replaces the rows (the later duplicate wins) and leaves the table and the rest alone', () => {
    for (const backend of ['cpu', 'native']) {
      const [got] = runOn(backend, fn);
      const [table] = runOn(backend, () => randTensor([m, d], 1));
      const [rows] = runOn(backend, () => randTensor([idx.length, d], 2));
      const want = Float32Array.from(table!.values);
      idx.forEach((r, i) => {
        want.set(rows!.values.subarray(i * d, (i + 1) * d), r * d);
      });
      assert.deepEqual(got!.values, want, backend);
      tf.setBackend(backend);
      const t = randTensor([m, d], 1);
      const before = t.dataSync().slice();
      scatterRows(t, tf.tensor1d(idx, 'int32'), randTensor([idx.length, d], 2)).dispose();
      assert.deepEqual(t.dataSync(), before, `${backend}: the input table is not written`);
    }
  });

  it('native runs natively and equals JS; bad input is named', () => {
    requireNative();
    assert.ok(nativeRuns('RetortScatterRows', () => checkParity('scatter', fn, 0)) > 0);
    for (const backend of ['cpu', 'native']) {
      tf.setBackend(backend);
      assert.throws(
        () => scatterRows(tf.zeros([4, 2]), tf.tensor1d([4], 'int32'), tf.zeros([1, 2])),
        /index 4|out of range/,
      );
      assert.throws(
        () => scatterRows(tf.zeros([4, 2]), tf.tensor1d([1], 'int32'), tf.zeros([1, 3])),
        /rows \[R, 2\]/,
      );
    }
  });
});
