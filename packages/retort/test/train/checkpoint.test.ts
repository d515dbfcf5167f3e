/**
 * Checkpoint files: a round trip; every byte after the fixed 12 is covered by the digest (each
 * single-bit flip is refused, none loads as other weights); version 1 files still load; the
 * reader refuses what is not a regular file and tables that do not fit their data. Every refusal
 * is a RetortError naming the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { RetortError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'retort-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(path: string): void {
  saveCheckpoint(path, { epoch: 3, globalStep: 30, meta: { note: 'x' } }, [
    { name: 'a', tensor: tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]) },
    { name: 'b', tensor: tf.tensor1d([-1.5, 0.25]) },
  ]);
}

/** A version-1 file as Retort wrote them before 2026-12: magic, 1, header length, header, data. */
function v1File(header: object, data: Float32Array): Buffer {
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((4 - (json.length % 4)) % 4, 0x20)]);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(0x4b435452, 0);
  head.writeUInt32LE(1, 4);
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json, Buffer.from(data.buffer)]);
}

const refused = (path: string, re: RegExp) =>
  assert.throws(
    () => loadCheckpoint(path),
    (e: unknown) => e instanceof RetortError && e.file === path && re.test(e.message),
  );

describe('checkpoint files', () => {
  it('round trip: header, shapes and values', () => {
    const p = join(dir, 'a.ckpt');
    sample(p);
    const ck = loadCheckpoint(p);
    assert.equal(ck.header.epoch, 3);
    assert.equal(ck.header.globalStep, 30);
    assert.deepEqual(ck.header.meta, { note: 'x' });
    assert.deepEqual(ck.values.get('a')!.shape, [2, 3]);
    assert.deepEqual([...ck.values.get('a')!.data], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...ck.values.get('b')!.data], [-1.5, 0.25]);
  });

  it('every single-bit flip past the fixed 12 bytes is refused; in them, a clear error', () => {
    const p = join(dir, 'b.ckpt');
    sample(p);
    const good = Buffer.from(require_(p));
    const q = join(dir, 'flipped.ckpt');
    let refusedCount = 0;
    for (let byte = 0; byte < good.length; byte++)
      for (const bit of [0, 3, 7]) {
        const bad = Buffer.from(good);
        bad[byte]! ^= 1 << bit;
        writeFileSync(q, bad);
        assert.throws(
          () => loadCheckpoint(q),
          (e: unknown) =>
            e instanceof RetortError &&
            /bad magic|format version|truncated|checksum mismatch|corrupt header|data bytes/.test(e.message),
          `byte ${byte} bit ${bit} loaded`,
        );
        refusedCount++;
      }
    assert.equal(refusedCount, good.length * 3);
  });

  it('truncated or extended files are refused', () => {
    const p = join(dir, 'c.ckpt');
    sample(p);
    const good = require_(p);
    for (const cut of [good.length - 1, good.length - 4, 60, 44, 11, 0]) {
      writeFileSync(join(dir, 'cut.ckpt'), good.subarray(0, cut));
      refused(join(dir, 'cut.ckpt'), /checksum mismatch|truncated|bad magic/);
    }
    writeFileSync(join(dir, 'long.ckpt'), Buffer.concat([good, Buffer.alloc(4)]));
    refused(join(dir, 'long.ckpt'), /checksum mismatch/);
  });

  it('version 1 files load, with their table checked against the data', () => {
    const p = join(dir, 'v1.ckpt');
    const header = {
      epoch: 1,
      globalStep: 2,
      meta: {},
      tensors: [{ name: 'w', shape: [2], offset: 0, length: 2 }],
    };
    writeFileSync(p, v1File(header, Float32Array.of(7, 8)));
    assert.deepEqual([...loadCheckpoint(p).values.get('w')!.data], [7, 8]);
    const cases: [object, RegExp][] = [
      [
        { ...header, tensors: [{ name: 'w', shape: [3], offset: 0, length: 2 }] },
        /shape \[3\] does not hold 2 values/,
      ],
      [
        { ...header, tensors: [{ name: 'w', shape: [4], offset: 0, length: 4 }] },
        /ends at value 4, the data holds 2/,
      ],
      [{ ...header, tensors: [{ name: 'w', shape: [-2], offset: 0, length: 2 }] }, /bad shape/],
      [
        {
          ...header,
          tensors: [
            { name: 'w', shape: [1], offset: 0, length: 1 },
            { name: 'w', shape: [1], offset: 1, length: 1 },
          ],
        },
        /'w' appears twice/,
      ],
      [{ ...header, tensors: 'no' }, /no tensor table/],
      [{ ...header, epoch: -1 }, /epoch\/globalStep are not counts/],
      [{ ...header, meta: null }, /meta is not an object/],
      [[1, 2], /header is not an object/],
    ];
    for (const [h, re] of cases) {
      writeFileSync(p, v1File(h, Float32Array.of(7, 8)));
      refused(p, re);
    }
    writeFileSync(
      p,
      Buffer.concat([v1File(header, Float32Array.of(7, 8)).subarray(0, 12), Buffer.from('{not json')]),
    );
    refused(p, /corrupt header|truncated header/);
  });

  it('what is not a regular file, or is missing, is refused by name', () => {
    refused('/dev/zero', /not a regular file/);
    refused(dir, /not a regular file/);
    refused(join(dir, 'missing.ckpt'), /cannot read \(ENOENT\)/);
  });
});

function require_(p: string): Buffer {
  return Buffer.from(readFileSync(p));
}
