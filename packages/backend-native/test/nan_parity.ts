/**
 * Parity for outputs that may hold NaN or infinities. checkParity now routes non-finite entries
 * itself (they must match exactly; the finite ones meet both criteria); this stays as the name
 * tests that expect non-finite values use.
 */
import assert from 'node:assert/strict';
import { assertClose, runOn, type tf } from './parity.js';

export function checkParityNonFinite(what: string, fn: () => tf.Tensor | tf.Tensor[], rtol = 1e-5): void {
  const ref = runOn('cpu', fn);
  const got = runOn('native', fn);
  assert.equal(got.length, ref.length, `${what}: number of outputs`);
  for (const [i, r] of ref.entries()) {
    const g = got[i]!;
    assert.deepEqual(g.shape, r.shape, `${what}: output ${i} shape`);
    const finite = (v: Float32Array) => v.map((x) => (Number.isFinite(x) ? x : 0));
    for (let j = 0; j < r.values.length; j++) {
      const a = g.values[j]!;
      const b = r.values[j]!;
      if (!Number.isFinite(a) || !Number.isFinite(b))
        assert.ok(
          Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)),
          `${what}: output ${i} at ${j}: ${a} vs ${b}`,
        );
    }
    assertClose(finite(g.values), finite(r.values), rtol, `${what}: output ${i} (finite entries)`);
  }
}
