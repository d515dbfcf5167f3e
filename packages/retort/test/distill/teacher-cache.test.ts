import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { BatchLoader } from '../../src/data/loader.js';
import { cacheRefusal, TeacherCache } from '../../src/distill/teacher-cache.js';
import { Rng } from '../../src/util/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'tcache-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function teacher(): tfl.LayersModel {
  const input = tfl.input({ shape: [4, 4, 1] });
  const out = tfl.layers.dense({ units: 3 }).apply(tfl.layers.flatten().apply(input)) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

it('computes once, reuses by weights+data key, and returns rows by dataset index', async () => {
  await tf.setBackend('native');
  const r = new Rng(1);
  const images = Uint8Array.from({ length: 10 * 16 }, () => r.int(256));
  const ds = {
    name: 'd',
    images,
    labels: new Uint8Array(10),
    count: 10,
    height: 4,
    width: 4,
    channels: 1,
    numClasses: 3,
  };
  const plain = new BatchLoader(ds, {
    batchSize: 4,
    shuffle: false,
    keepLast: true,
    mean: [0.5],
    std: [0.2],
    seed: 0,
    indices: Uint32Array.of(1, 3, 5, 7, 9),
  });
  const t = teacher();
  const a = TeacherCache.build(t, plain, 'k1', dir);
  assert.equal(a.reused, false);
  const b = TeacherCache.build(t, plain, 'k1', dir);
  assert.equal(b.reused, true);
  assert.equal(b.path, a.path);
  assert.notEqual(TeacherCache.build(t, plain, 'k2', dir).path, a.path, 'data key must change the cache');
  const idx = Uint32Array.of(9, 3);
  const want = t.predict(tf.tensor4d(plain.makeBatch(idx).x, [2, 4, 4, 1])) as tf.Tensor;
  assert.deepEqual(Array.from(b.lookup(idx).dataSync()), Array.from(want.dataSync()));
  const t2 = teacher(); // other weights: another cache
  assert.notEqual(TeacherCache.build(t2, plain, 'k1', dir).path, a.path);
});

it('refuses with a reason under augmentation', () => {
  assert.equal(cacheRefusal({ cropPadding: 0, hflip: false }), null);
  assert.match(
    cacheRefusal({ cropPadding: 4, hflip: true })!,
    /random crops \(cropPadding 4\) and horizontal flips change the inputs/,
  );
});
