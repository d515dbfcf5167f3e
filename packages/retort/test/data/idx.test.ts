import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { loadIdxSplit } from '../../src/data/fashion-mnist.js';
import { parseIdx, readIdx } from '../../src/data/idx.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function idx(dims: number[], data: number[], typeCode = 0x08): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = typeCode;
  head[3] = dims.length;
  for (const [i, d] of dims.entries()) head.writeUInt32BE(d, 4 + 4 * i);
  return Buffer.concat([head, Buffer.from(data)]);
}

describe('IDX reader', () => {
  it('parses dims and data, raw and gzip', () => {
    const dir = mkdtempSync(join(scratch, 'idx-'));
    const raw = idx([2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    writeFileSync(join(dir, 'a'), raw);
    writeFileSync(join(dir, 'a.gz'), gzipSync(raw));
    for (const f of ['a', 'a.gz']) {
      const r = readIdx(join(dir, f));
      assert.deepEqual(r.dims, [2, 2, 3]);
      assert.deepEqual(Array.from(r.data), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }
  });
  it('names the file and the problem for bad input', () => {
    assert.throws(
      () => parseIdx(Buffer.from([1, 2, 8, 1, 0, 0, 0, 1, 5]), 'x.idx'),
      /x\.idx: wrong magic number/,
    );
    assert.throws(
      () => parseIdx(idx([4], [1, 2]), 'y.idx'),
      /y\.idx: truncated: header \[4\] needs 4 bytes of data, file has 2/,
    );
    assert.throws(() => parseIdx(idx([1], [1], 0x0d), 'z.idx'), /z\.idx: element type 0x0d/);
    assert.throws(() => parseIdx(idx([1], [1, 2]), 'w.idx'), /w\.idx: 1 bytes of trailing data/);
    const dir = mkdtempSync(join(scratch, 'idx-'));
    writeFileSync(join(dir, 'bad.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    assert.throws(() => readIdx(join(dir, 'bad.gz')), /bad\.gz: corrupt gzip data/);
    assert.throws(() => readIdx(join(dir, 'missing')), /missing: cannot read \(ENOENT\)/);
  });
  it('a gzip bomb stops at the size its header declares; a header over the limit is refused unread', () => {
    const dir = mkdtempSync(join(scratch, 'bomb-'));
    // Declares 10 images of 28x28 (7,856 bytes with the header), then inflates to 64 MiB of zeros.
    const head = Buffer.from(idx([10, 28, 28], []).subarray(0, 16));
    const bomb = join(dir, 'bomb-idx3-ubyte.gz');
    writeFileSync(bomb, gzipSync(Buffer.concat([head, Buffer.alloc(64 * 1024 ** 2)]), { level: 9 }));
    const t0 = performance.now();
    assert.throws(
      () => readIdx(bomb),
      /bomb-idx3-ubyte\.gz: inflates past 7856 bytes, the size its header declares/,
    );
    assert.ok(performance.now() - t0 < 1000, 'stops early instead of inflating 64 MiB');
    const huge = join(dir, 'huge-idx3-ubyte.gz');
    writeFileSync(huge, gzipSync(idx([65536, 256, 256], [])));
    assert.throws(() => readIdx(huge), /declares 4294967296 bytes of data, over the 1024 MiB IDX limit/);
    assert.throws(() => readIdx('/dev/zero'), /IDX file \/dev\/zero: not a regular file/);
  });

  it('checks a split: count mismatch, labels out of range, missing files', () => {
    const dir = mkdtempSync(join(scratch, 'fm-'));
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), idx([3, 2, 2], new Array(12).fill(0)));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx([2], [0, 1]));
    assert.throws(
      () => loadIdxSplit(dir, 'train'),
      /train-labels-idx1-ubyte: 2 labels but .*train-images-idx3-ubyte has 3 images/,
    );
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx([3], [0, 1, 10]));
    assert.throws(() => loadIdxSplit(dir, 'train'), /label 10 at index 2 is out of range 0\.\.9/);
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx([3], [0, 1, 9]));
    const s = loadIdxSplit(dir, 'train');
    assert.equal(s.count, 3);
    assert.equal(s.height, 2);
    assert.throws(() => loadIdxSplit(dir, 't10k'), /t10k-images-idx3-ubyte\(\.gz\) not found/);
  });
  it('reads the real Fashion-MNIST test split when installed', () => {
    const s = loadIdxSplit('/usr/share/datasets/fashion-mnist', 't10k');
    assert.equal(s.count, 10000);
    assert.equal(s.height, 28);
    const counts = new Array(10).fill(0);
    for (const l of s.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(1000));
  });
});
