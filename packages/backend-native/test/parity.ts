/**
 * Parity harness: run the same computation on backend `cpu` (the reference) and `native`, from the
 * same seeded inputs, and compare every output with a relative tolerance.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradients tf.grad needs
import { nativeAvailable, nativeCallCounts, nativeUnavailableReason } from '../src/index.js';

export { tf };

/** The suite needs the addon: a parity test that silently ran JS against JS would prove nothing. */
export function requireNative(): void {
  assert.ok(nativeAvailable, `native addon not loaded: ${nativeUnavailableReason}`);
}

/** Deterministic uniform values in [lo, hi) (mulberry32). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

/** A tensor of `shape` with seeded uniform values. */
export function randTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  return tf.tensor(
    rand(
      shape.reduce((a, b) => a * b, 1),
      seed,
      lo,
      hi,
    ),
    shape,
  );
}

/**
 * Runs `fn` on `backend` and returns its outputs as plain arrays (with shapes). `fn` builds its
 * own input tensors, so they live on that backend.
 */
export function runOn(
  backend: string,
  fn: () => tf.Tensor | tf.Tensor[],
): { shape: number[]; values: Float32Array }[] {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const out = fn();
    const list = Array.isArray(out) ? out : [out];
    return list.map((t) => ({ shape: t.shape.slice(), values: Float32Array.from(t.dataSync()) }));
  });
}

/** Per-element tolerance of checkParity (see assertClose). */
export interface Tolerance {
  /** Bound on max |a - b| / max |b| (the usual criterion for kernels whose outputs cross zero). */
  rtol: number;
  /**
   * Per element: |a - b| <= atol + elementRtol * |b|, so that small elements are checked relative
   * to themselves and not only against the largest one. atol defaults to 0.1 * rtol * max |b|
   * (room for cancellation in outputs near zero), elementRtol to 10 * rtol.
   */
  atol?: number;
  elementRtol?: number;
}

/**
 * Two criteria on finite data: max |a - b| / (max |b| + tiny) <= rtol, and per element
 * |a - b| <= atol + elementRtol * |b| (defaults in Tolerance). Non-finite entries must match
 * exactly (NaN with NaN, each infinity with itself) and are left out of both criteria.
 */
export function assertClose(a: Float32Array, b: Float32Array, tol: number | Tolerance, what: string): void {
  const t = typeof tol === 'number' ? { rtol: tol } : tol;
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    const av = a[i]!;
    const bv = b[i]!;
    if (!Number.isFinite(bv) || !Number.isFinite(av)) {
      if (!(Object.is(av, bv) || (Number.isNaN(av) && Number.isNaN(bv))))
        assert.fail(`${what}: non-finite mismatch at ${i} (${av} vs ${bv})`);
      continue;
    }
    maxRef = Math.max(maxRef, Math.abs(bv));
  }
  const atol = t.atol ?? 0.1 * t.rtol * maxRef;
  const elementRtol = t.elementRtol ?? 10 * t.rtol;
  let maxDiff = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const av = a[i]!;
    const bv = b[i]!;
    if (!Number.isFinite(bv)) continue;
    const d = Math.abs(av - bv);
    if (d > maxDiff) {
      maxDiff = d;
      at = i;
    }
    if (d > atol + elementRtol * Math.abs(bv))
      assert.fail(
        `${what}: element ${i}: ${av} vs ${bv} (|diff| ${d.toExponential(2)} > ${atol.toExponential(2)} + ${elementRtol} x |ref|)`,
      );
  }
  const rel = maxDiff / (maxRef + 1e-30);
  assert.ok(
    rel <= t.rtol,
    `${what}: relative error ${rel.toExponential(2)} > ${t.rtol} (at ${at}: ${a[at]} vs ${b[at]})`,
  );
}

/**
 * Runs `fn` on cpu and native and checks every output (shape and values); outputs with NaN or
 * infinities are compared entry by entry for those and by assertClose for the rest.
 */
export function checkParity(
  what: string,
  fn: () => tf.Tensor | tf.Tensor[],
  tol: number | Tolerance = 1e-5,
): void {
  const ref = runOn('cpu', fn);
  const got = runOn('native', fn);
  assert.equal(got.length, ref.length, `${what}: number of outputs`);
  for (let i = 0; i < ref.length; i++) {
    assert.deepEqual(got[i]!.shape, ref[i]!.shape, `${what}: output ${i} shape`);
    assertClose(got[i]!.values, ref[i]!.values, tol, `${what}: output ${i}`);
  }
}

/** How many times kernel `name` ran natively (not through its JS fallback) while `fn` ran. */
export function nativeRuns(name: string, fn: () => void): number {
  const before = nativeCallCounts.get(name) ?? 0;
  fn();
  return (nativeCallCounts.get(name) ?? 0) - before;
}
