/**
 * Bit-level parity for the elementwise kernels on special values: every output element must be the
 * same float as cpu's, NaN for NaN and with the sign of zero (Object.is), not merely close.
 */
import assert from 'node:assert/strict';
import { runOn, type tf } from './parity.js';

export function checkExact(what: string, fn: () => tf.Tensor | tf.Tensor[]): void {
  const ref = runOn('cpu', fn);
  const got = runOn('native', fn);
  assert.deepEqual(
    got.map((o) => o.shape),
    ref.map((o) => o.shape),
    `${what}: output shapes`,
  );
  for (const [i, r] of ref.entries()) {
    const g = got[i]!.values;
    const at = r.values.findIndex((b, j) => !Object.is(g[j], b));
    assert.equal(at, -1, `${what}: output ${i} at ${at}: native ${g[at]} vs cpu ${r.values[at]}`);
  }
}

/** Values where elementwise kernels differ most easily: NaN, infinities, signed zeros, units, tiny. */
export const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0, 1, -1, 2.5, -0.5, 1e-30, -3e38, 100, -100];
