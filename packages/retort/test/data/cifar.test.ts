/**
 * CIFAR-10/100 binary batches on small synthetic files: the planar CHW -> interleaved HWC layout
 * checked pixel for pixel, label bytes, batch order, and one clear error per kind of bad input.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCifar, parseCifarBatch } from '../../src/data/cifar.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-cifar-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const fresh = () => mkdtempSync(join(scratch, 'd-'));

let state = 12345;
/** Deterministic pseudo-random bytes (an LCG), so every pixel position holds a distinct-ish value. */
function bytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

/** One record: the label bytes, then 3072 random pixel bytes (planes R, G, B of 32 rows of 32). */
function record(labels: number[]): Uint8Array {
  const r = new Uint8Array(labels.length + 3072);
  r.set(labels, 0);
  r.set(bytes(3072), labels.length);
  return r;
}

function concat(rs: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(rs.reduce((a, r) => a + r.length, 0));
  let at = 0;
  for (const r of rs) {
    out.set(r, at);
    at += r.length;
  }
  return out;
}

/** The expected HWC image of a record, written out from the format's definition. */
function hwc(rec: Uint8Array, labelBytes: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < 32; y++)
    for (let x = 0; x < 32; x++)
      for (let c = 0; c < 3; c++) out.push(rec[labelBytes + c * 1024 + y * 32 + x]!);
  return out;
}

describe('CIFAR-10 binary batches', () => {
  it('planar CHW becomes interleaved HWC, every pixel; labels kept', () => {
    const recs = [record([3]), record([7]), record([0])];
    const d = parseCifarBatch(concat(recs), 'cifar10', 'x.bin');
    assert.equal(d.count, 3);
    assert.deepEqual(Array.from(d.labels), [3, 7, 0]);
    assert.equal(d.images.length, 3 * 3072);
    for (const [i, r] of recs.entries())
      assert.deepEqual(Array.from(d.images.subarray(i * 3072, (i + 1) * 3072)), hwc(r, 1), `image ${i}`);
    // One spot by hand: image 1, row 2, column 5, green = byte 1 + 1024 + 2 * 32 + 5 of its record.
    assert.equal(d.images[3072 + (2 * 32 + 5) * 3 + 1], recs[1]![1 + 1024 + 69]);
  });

  it('reads data_batch_1..5 in order for train and test_batch for test, with class names', () => {
    const dir = fresh();
    const train: Uint8Array[] = [];
    for (let b = 1; b <= 5; b++) {
      const recs = Array.from({ length: b === 2 ? 2 : 1 }, (_, k) => record([(b + k) % 10]));
      train.push(...recs);
      writeFileSync(join(dir, `data_batch_${b}.bin`), concat(recs));
    }
    writeFileSync(join(dir, 'test_batch.bin'), concat([record([9]), record([4])]));
    const d = loadCifar(dir, 'cifar10', 'train');
    assert.equal(d.name, 'cifar10/train');
    assert.equal(d.count, 6);
    assert.deepEqual([d.height, d.width, d.channels, d.numClasses], [32, 32, 3, 10]);
    assert.deepEqual(Array.from(d.labels), [1, 2, 3, 3, 4, 5]);
    for (const [i, r] of train.entries())
      assert.deepEqual(Array.from(d.images.subarray(i * 3072, (i + 1) * 3072)), hwc(r, 1), `image ${i}`);
    assert.equal(d.classNames?.[3], 'cat');
    const t = loadCifar(dir, 'cifar10', 'test');
    assert.deepEqual(Array.from(t.labels), [9, 4]);
  });
});

describe('CIFAR-100 binary', () => {
  it('uses the fine label (second byte), 100 classes; HWC pixels after two label bytes', () => {
    const dir = fresh();
    const recs = [record([1, 42]), record([19, 99])];
    writeFileSync(join(dir, 'train.bin'), concat(recs));
    writeFileSync(join(dir, 'test.bin'), record([0, 5]));
    const train = loadCifar(dir, 'cifar100', 'train');
    assert.deepEqual(Array.from(train.labels), [42, 99]);
    assert.equal(train.numClasses, 100);
    assert.equal(train.classNames, undefined);
    assert.deepEqual(Array.from(train.images.subarray(3072)), hwc(recs[1]!, 2));
    assert.deepEqual(Array.from(loadCifar(dir, 'cifar100', 'test').labels), [5]);
  });
});

describe('CIFAR errors', () => {
  it('truncated or empty file: names the file, its size and the record size', () => {
    assert.throws(
      () =>
        parseCifarBatch(
          concat([record([1]), record([2])]).subarray(0, 5000),
          'cifar10',
          '/d/data_batch_1.bin',
        ),
      /\/d\/data_batch_1\.bin: 5000 bytes is not a whole number of cifar10 records of 3073 bytes \(truncated/,
    );
    assert.throws(
      () => parseCifarBatch(record([1]), 'cifar100', '/d/train.bin'),
      /\/d\/train\.bin: 3073 bytes is not a whole number of cifar100 records of 3074 bytes/,
    );
    assert.throws(() => parseCifarBatch(new Uint8Array(0), 'cifar10', 'e.bin'), /e\.bin: empty file/);
  });

  it('label out of range: names the file, the record and the value', () => {
    assert.throws(
      () => parseCifarBatch(concat([record([1]), record([12])]), 'cifar10', 'b.bin'),
      /b\.bin: record 1 has label 12, out of range 0\.\.9/,
    );
    assert.throws(
      () => parseCifarBatch(concat([record([0, 0]), record([0, 1]), record([3, 100])]), 'cifar100', 'c.bin'),
      /c\.bin: record 2 has label 100, out of range 0\.\.99/,
    );
  });

  it('missing file: names it and the folder data.dir must point at', () => {
    const dir = fresh();
    assert.throws(
      () => loadCifar(dir, 'cifar10', 'train'),
      /data_batch_1\.bin not found; point data\.dir at the extracted 'cifar-10-batches-bin' folder/,
    );
    writeFileSync(join(dir, 'data_batch_1.bin'), record([0]));
    writeFileSync(join(dir, 'data_batch_2.bin'), record([0]));
    assert.throws(() => loadCifar(dir, 'cifar10', 'train'), /data_batch_3\.bin not found/);
    assert.throws(
      () => loadCifar(dir, 'cifar100', 'test'),
      /test\.bin not found; point data\.dir at the extracted 'cifar-100-binary' folder/,
    );
    const py = fresh();
    writeFileSync(join(py, 'data_batch_1'), 'pickle');
    assert.throws(() => loadCifar(py, 'cifar10', 'train'), /looks like the Python version/);
  });
});
