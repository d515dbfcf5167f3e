/**
 * The buffer pool: reuse by exact size, reference counts, and eviction of the least recently used
 * sizes once over the cap (a pool that refused new buffers when full kept the first model's sizes
 * and made every later model page-fault each step).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { BufferPool, defaultPoolBytes } from '../src/pool.js';

it('hands a released buffer back for the same size only, once no tensor holds it', () => {
  const p = new BufferPool(1024);
  const a = p.alloc(16);
  p.retain(a);
  p.retain(a);
  p.release(a);
  assert.equal(p.bytes, 0, 'still held by one entry');
  p.release(a);
  assert.equal(p.bytes, 64);
  assert.notEqual(p.alloc(8), a);
  assert.equal(p.alloc(16), a);
  assert.equal(p.bytes, 0);
  p.release(new Float32Array(16)); // not the pool's: ignored
  assert.equal(p.bytes, 0);
});

it('over the cap, evicts the least recently used sizes and keeps the newest', () => {
  const p = new BufferPool(400); // 100 floats
  const give = (n: number) => {
    const a = p.alloc(n);
    p.retain(a);
    p.release(a);
    return a;
  };
  const a40 = give(40); // 160 B
  const a30 = give(30); // 120 B, total 280
  // Size 40 used again: now 30 is the least recently used.
  assert.equal(give(40), a40);
  const a50 = give(50); // 200 B: 480 > 400, evict size 30 -> 360
  assert.equal(p.bytes, 360);
  assert.notEqual(p.alloc(30), a30, 'size 30 was evicted');
  const b40 = p.alloc(40);
  assert.equal(b40, a40, 'size 40 kept');
  p.retain(b40);
  p.release(b40);
  assert.equal(p.alloc(50), a50, 'size 50 kept');
  // A buffer larger than the whole pool is never kept; neither is one that cannot fit alone.
  const big = p.alloc(200);
  p.retain(big);
  p.release(big);
  assert.notEqual(p.alloc(200), big);
});

it('RETORT_POOL_MB sets the cap; a bad value is one clear error', () => {
  const old = process.env['RETORT_POOL_MB'];
  try {
    process.env['RETORT_POOL_MB'] = '64';
    assert.equal(defaultPoolBytes(), 64 * 2 ** 20);
    process.env['RETORT_POOL_MB'] = 'lots';
    assert.throws(() => defaultPoolBytes(), /RETORT_POOL_MB=lots: expected a number of MiB/);
    delete process.env['RETORT_POOL_MB'];
    const d = defaultPoolBytes();
    assert.ok(d > 0 && d <= 4 * 2 ** 30, `default ${d}`);
  } finally {
    if (old === undefined) delete process.env['RETORT_POOL_MB'];
    else process.env['RETORT_POOL_MB'] = old;
  }
});
