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

/**
 * max |a - b| / (max |b| + tiny) over all elements must be <= rtol. Normalising by the largest
 * reference magnitude is the usual relative criterion for kernels whose outputs cross zero.
 */
export function assertClose(a: Float32Array, b: Float32Array, rtol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  let maxRef = 0;
  let maxDiff = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const av = a[i]!;
    const bv = b[i]!;
    if (Number.isNaN(av) !== Number.isNaN(bv)) assert.fail(`${what}: NaN mismatch at ${i} (${av} vs ${bv})`);
    maxRef = Math.max(maxRef, Math.abs(bv));
    const d = Math.abs(av - bv);
    if (d > maxDiff) {
      maxDiff = d;
      at = i;
    }
  }
  const rel = maxDiff / (maxRef + 1e-30);
  assert.ok(
    rel <= rtol,
    `${what}: relative error ${rel.toExponential(2)} > ${rtol} (at ${at}: ${a[at]} vs ${b[at]})`,
  );
}

/** Runs `fn` on cpu and native and checks every output (shape and values). */
export function checkParity(what: string, fn: () => tf.Tensor | tf.Tensor[], rtol = 1e-5): void {
  const ref = runOn('cpu', fn);
  const got = runOn('native', fn);
  assert.equal(got.length, ref.length, `${what}: number of outputs`);
  for (let i = 0; i < ref.length; i++) {
    assert.deepEqual(got[i]!.shape, ref[i]!.shape, `${what}: output ${i} shape`);
    assertClose(got[i]!.values, ref[i]!.values, rtol, `${what}: output ${i}`);
  }
}

/** How many times kernel `name` ran natively (not through its JS fallback) while `fn` ran. */
export function nativeRuns(name: string, fn: () => void): number {
  const before = nativeCallCounts.get(name) ?? 0;
  fn();
  return (nativeCallCounts.get(name) ?? 0) - before;
}
