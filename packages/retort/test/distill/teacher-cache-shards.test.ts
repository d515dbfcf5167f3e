/**
 * The teacher cache computed as n shards and merged: the merged file is TeacherCache.build's file
 * byte for byte (logits only and with cached features, a partial last batch, a loader over a
 * subset of the dataset in its own order), and a missing, foreign or misnumbered shard is refused
 * naming the file.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { BatchLoader } from '../../src/data/loader.js';
import {
  type CachedTaps,
  mergeTeacherShards,
  shardBatches,
  TeacherCache,
  teacherCacheKey,
  teacherCacheLayout,
  teacherShardPath,
  teacherShardRows,
  writeTeacherShard,
} from '../../src/distill/teacher-cache.js';
import { layersTeacher } from '../../src/teachers/layers.js';
import type { Teacher } from '../../src/teachers/types.js';
import { RetortError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';

const scratch = mkdtempSync(join(tmpdir(), 'tcache-shards-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(scratch, `d${dirs++}`);

/** A small conv net with a tapped 4x4x3 map ('conv') and an 8-d embedding ('feat') before 3 logits. */
function net(seed: number): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  const input = tfl.input({ shape: [6, 6, 1] });
  const c = tfl.layers
    .conv2d({ filters: 3, kernelSize: 3, activation: 'relu', name: 'conv', kernelInitializer: init(seed) })
    .apply(input) as tfl.SymbolicTensor;
  const f = tfl.layers
    .dense({ units: 8, activation: 'relu', name: 'feat', kernelInitializer: init(seed + 1) })
    .apply(tfl.layers.flatten().apply(c)) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: 3, kernelInitializer: init(seed + 2) })
    .apply(f) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** `count` random 6x6 images in batches of `batchSize`, read in order (all of them, or `indices`). */
function loader(count: number, batchSize: number, indices?: Uint32Array, shuffle = false): BatchLoader {
  const r = new Rng(5);
  const ds = {
    name: 'd',
    images: Uint8Array.from({ length: count * 36 }, () => r.int(256)),
    labels: Uint8Array.from({ length: count }, (_, i) => i % 3),
    count,
    height: 6,
    width: 6,
    channels: 1,
    numClasses: 3,
  };
  return new BatchLoader(ds, {
    batchSize,
    shuffle,
    keepLast: true,
    mean: [0.5],
    std: [0.25],
    seed: 0,
    ...(indices ? { indices } : {}),
  });
}

/** Shards 0..n-1 of (teacher, plain, taps) written to `dir`, then merged; returns the merged path. */
async function shardAndMerge(
  teacher: Teacher,
  plain: BatchLoader,
  dataKey: string,
  dir: string,
  n: number,
  taps?: CachedTaps,
  maxFeatureBytes?: number,
): Promise<string> {
  const paths: string[] = [];
  for (let i = 0; i < n; i++)
    paths.push(await writeTeacherShard(teacher, plain, dataKey, dir, i, n, taps, maxFeatureBytes));
  const key = basename(paths[0]!).split('.')[0]!;
  assert.deepEqual(
    paths,
    Array.from({ length: n }, (_, i) => teacherShardPath(dir, key, i, n)),
  );
  const { layers } = teacherCacheLayout(teacher, plain.data.count, taps, maxFeatureBytes);
  const merged = mergeTeacherShards({ plain, dataKey, layers, dir, key, n });
  assert.ok(
    paths.every((p) => !existsSync(p)),
    'the shards are deleted after the merge',
  );
  return merged;
}

describe('teacher cache shards', () => {
  it('shardBatches: contiguous ranges that cover every batch once, as even as whole batches allow', () => {
    for (let length = 0; length <= 9; length++)
      for (let n = 1; n <= 5; n++) {
        const rs = Array.from({ length: n }, (_, i) => shardBatches(length, i, n));
        assert.equal(rs[0]!.from, 0);
        assert.equal(rs.at(-1)!.to, length);
        for (let i = 1; i < n; i++) assert.equal(rs[i]!.from, rs[i - 1]!.to);
        const sizes = rs.map((r) => r.to - r.from);
        assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${length} batches in ${n}: ${sizes}`);
      }
    assert.throws(() => shardBatches(4, 3, 3), RetortError);
    assert.throws(() => shardBatches(4, 0, 0), RetortError);
    assert.throws(() => shardBatches(4, 0.5, 2), RetortError);
  });

  const cases = [
    // 11 images in batches of 4: the last batch holds 3.
    { name: 'all images, partial last batch', plain: () => loader(11, 4) },
    // A training part in the split's own (non-sorted) order; the other rows stay zero.
    {
      name: 'a subset in its own order',
      plain: () => loader(12, 3, Uint32Array.of(9, 1, 4, 7, 0, 11, 3, 8)),
    },
  ];
  for (const c of cases) {
    it(`merged shards are the single pass's file byte for byte: ${c.name}`, async () => {
      await tf.setBackend('native');
      const plain = c.plain();
      const model = net(3);
      const teacher = layersTeacher(model);
      const taps: CachedTaps = { view: teacher.tap(['conv', 'feat']), layers: ['conv', 'feat'] };
      for (const [what, t, limit] of [
        ['logits only', undefined, undefined],
        ['with cached features', taps, undefined],
        ['features over the limit (logits only)', taps, 100],
      ] as const) {
        const single = await TeacherCache.build(teacher, plain, 'k', freshDir(), t, limit);
        assert.equal(single.reused, false);
        assert.equal(single.layers.length, what === 'with cached features' ? 2 : 0);
        assert.equal(basename(single.path), `${teacherCacheKey(teacher, 'k', single.layers)}.ckpt`);
        const bytes = readFileSync(single.path);
        // n = 5 exceeds the batches of the first case (3): some shards are empty.
        for (const n of [1, 2, 3, 5]) {
          const dir = freshDir();
          const merged = await shardAndMerge(teacher, plain, 'k', dir, n, t, limit);
          assert.equal(basename(merged), basename(single.path), `${what}, ${n} shards: same key`);
          assert.ok(readFileSync(merged).equals(bytes), `${what}, ${n} shards: same bytes`);
          assert.deepEqual(readdirSync(dir), [basename(merged)]);
          const again = await TeacherCache.build(teacher, plain, 'k', dir, t, limit);
          assert.equal(again.reused, true, 'build reuses the merged file');
        }
      }
      model.dispose();
    });
  }

  it('shard rows: the batches of the range, rows by epoch position, and their dataset indices', async () => {
    await tf.setBackend('native');
    const plain = loader(12, 3, Uint32Array.of(9, 1, 4, 7, 0, 11, 3, 8));
    const model = net(4);
    const r = await teacherShardRows(model, plain, 1, 2);
    assert.deepEqual(r.batches, [1, 3]);
    assert.deepEqual(r.items, [3, 8]);
    assert.deepEqual(Array.from(r.index), [7, 0, 11, 3, 8]);
    // Exact against the same batches ([7, 0, 11] and [3, 8]) run directly.
    const live = (idx: number[]) =>
      Array.from(
        (
          model.predict(
            tf.tensor4d(plain.makeBatch(Uint32Array.from(idx)).x, [idx.length, 6, 6, 1]),
          ) as tf.Tensor
        ).dataSync(),
      );
    assert.deepEqual(Array.from(r.logits), [...live([7, 0, 11]), ...live([3, 8])]);
    model.dispose();
  });

  it('refuses a missing, foreign or misnumbered shard naming the file, and a shuffling loader', async () => {
    await tf.setBackend('native');
    const plain = loader(11, 4);
    const model = net(5);
    const dir = freshDir();
    const key = teacherCacheKey(model, 'k', []);
    const merge = (n: number) => () => mergeTeacherShards({ plain, dataKey: 'k', layers: [], dir, key, n });
    await writeTeacherShard(model, plain, 'k', dir, 0, 3);
    await writeTeacherShard(model, plain, 'k', dir, 2, 3);
    const missing = teacherShardPath(dir, key, 1, 3);
    const refused = (why: RegExp, file: string) => (e: unknown) => {
      assert.ok(e instanceof RetortError, String(e));
      assert.match(e.message, why);
      assert.ok(e.message.includes(file), e.message);
      assert.equal(e.file, file);
      return true;
    };
    assert.throws(merge(3), refused(/1 of 3 shard files missing/, missing));
    // Shard 1 of another cache (other data) under this cache's name.
    const other = await writeTeacherShard(model, plain, 'k2', freshDir(), 1, 3);
    copyFileSync(other, missing);
    assert.throws(merge(3), refused(/belongs to cache ".*", not ".*"/, missing));
    // Shard 1 of 2 renamed as shard 1 of 3.
    copyFileSync(await writeTeacherShard(model, plain, 'k', freshDir(), 1, 2), missing);
    assert.throws(merge(3), refused(/of is 2, expected 3/, missing));
    // The right shard: the merge goes through, and nothing was written before.
    assert.ok(!existsSync(join(dir, `${key}.ckpt`)));
    await writeTeacherShard(model, plain, 'k', dir, 1, 3);
    assert.equal(merge(3)(), join(dir, `${key}.ckpt`));
    // A shuffling loader shows each job other batches.
    await assert.rejects(
      writeTeacherShard(model, loader(11, 4, undefined, true), 'k', dir, 0, 2),
      /shuffles or augments/,
    );
    model.dispose();
  });
});
