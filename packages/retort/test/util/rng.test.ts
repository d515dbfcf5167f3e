import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Rng, seedEverything, unseed } from '../../src/util/rng.js';

it('same seed, same stream; different seeds differ; state round-trips', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.nextU32()),
  );
  assert.notDeepEqual(
    xs,
    Array.from({ length: 5 }, () => new Rng(43).nextU32()),
  );
  const st = a.getState();
  const next = [a.next(), a.next()];
  const c = new Rng(0);
  c.setState(st);
  assert.deepEqual([c.next(), c.next()], next);
});

it('values are in range and roughly uniform; permutations are permutations', () => {
  const r = new Rng(7);
  let sum = 0;
  for (let i = 0; i < 20000; i++) {
    const v = r.next();
    assert.ok(v >= 0 && v < 1);
    sum += v;
  }
  assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01, `mean ${sum / 20000}`);
  const p = r.permutation(100);
  assert.deepEqual(
    Array.from(p).sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
});

it('seedEverything makes Math.random repeatable', () => {
  seedEverything(3);
  const a = [Math.random(), Math.random()];
  seedEverything(3);
  const b = [Math.random(), Math.random()];
  unseed();
  assert.deepEqual(a, b);
});
