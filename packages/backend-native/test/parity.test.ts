/**
 * The parity helpers themselves: each criterion catches the mismatch it is there for (the old
 * max-relative check let a finite mismatch pass beside -Infinity, and checked small elements only
 * against the largest one).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertClose } from './parity.js';

const f = (...v: number[]) => Float32Array.from(v);

it('assertClose: non-finite entries must match exactly, and do not excuse finite mismatches', () => {
  assertClose(f(-Infinity, 1, Number.NaN), f(-Infinity, 1, Number.NaN), 1e-5, 'same');
  assert.throws(() => assertClose(f(-Infinity, 1.5), f(-Infinity, 1), 1e-5, 'x'), /element 1: 1.5 vs 1/);
  assert.throws(() => assertClose(f(Infinity, 1), f(-Infinity, 1), 1e-5, 'x'), /non-finite mismatch at 0/);
  assert.throws(() => assertClose(f(Number.NaN, 1), f(0, 1), 1e-5, 'x'), /non-finite mismatch at 0/);
});

it('assertClose: small elements are checked relative to themselves, not only to the largest', () => {
  // 2e-3 off on an element of 0.01 (20%), beside an element of 1000: max-relative error 2e-6.
  assert.throws(() => assertClose(f(1000, 0.012), f(1000, 0.01), 1e-5, 'x'), /element 1: 0\.012/);
  // Rounding-level differences pass.
  assertClose(f(1000, 0.0100001), f(1000, 0.01), 1e-5, 'x');
  // The max-relative criterion still holds on its own.
  assert.throws(
    () => assertClose(f(1, 2), f(1, 2.001), { rtol: 1e-5, elementRtol: 1 }, 'x'),
    /relative error/,
  );
});
