/**
 * A short run of the fuzz harness (run.ts) inside npm test: 300 seeded mutations per reader and
 * loader, each in a worker process that a crash or a hang cannot take down with it. Every case
 * must be read or refused with a RetortError. `npm run fuzz` runs the long version (20,000 per
 * target) and writes bench/results/fuzz.md.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzTarget } from './run.js';
import { TARGETS } from './targets.js';

describe('fuzzing every reader and loader (300 cases each)', () => {
  for (const t of TARGETS)
    it(`${t.name}: no crash, hang or foreign error`, async () => {
      const r = await fuzzTarget(t.name, 300, 7, 5000);
      assert.deepEqual(
        { foreign: r.foreign.slice(0, 3), crashes: r.crashes, hangs: r.hangs },
        { foreign: [], crashes: [], hangs: [] },
      );
      // Every case was answered, and the mutations are not all rejected at the door.
      assert.equal(r.accepted + r.refused, 300);
      assert.ok(r.refused > 0, `${t.name}: no mutation was refused`);
    });
});
