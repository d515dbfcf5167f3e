import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { BatchLoader } from '../../src/data/loader.js';
import { buildOfflineTask, parseTerms } from '../../src/distill/schemes/offline.js';
import { cacheRefusal, TeacherCache } from '../../src/distill/teacher-cache.js';
import { layersTeacher } from '../../src/teachers/layers.js';
import { Rng } from '../../src/util/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'tcache-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function teacher(): tfl.LayersModel {
  const input = tfl.input({ shape: [4, 4, 1] });
  const out = tfl.layers.dense({ units: 3 }).apply(tfl.layers.flatten().apply(input)) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** A net with a named 5-d embedding before its 3 logits. */
function tapped(seed: number): tfl.LayersModel {
  const input = tfl.input({ shape: [4, 4, 1] });
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  const f = tfl.layers
    .dense({ units: 5, activation: 'relu', name: 'feat', kernelInitializer: init(seed) })
    .apply(tfl.layers.flatten().apply(input)) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: 3, kernelInitializer: init(seed + 1) })
    .apply(f) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** `count` random 4x4 images; the loader reads `indices` (default all), in order. */
function dataset(count: number, indices?: Uint32Array) {
  const r = new Rng(1);
  const images = Uint8Array.from({ length: count * 16 }, () => r.int(256));
  const ds = {
    name: 'd',
    images,
    labels: Uint8Array.from({ length: count }, (_, i) => i % 3),
    count,
    height: 4,
    width: 4,
    channels: 1,
    numClasses: 3,
  };
  return new BatchLoader(ds, {
    batchSize: 4,
    shuffle: false,
    keepLast: true,
    mean: [0.5],
    std: [0.2],
    seed: 0,
    ...(indices ? { indices } : {}),
  });
}

it('caches tapped teacher features: rows by index, its own key, and a step equal to the live teacher', async () => {
  await tf.setBackend('native');
  const plain = dataset(10);
  const t = tapped(3);
  const taps = { view: layersTeacher(t).tap(['feat']), layers: ['feat'] };
  const logitsOnly = await TeacherCache.build(t, plain, 'k1', dir);
  const c = await TeacherCache.build(t, plain, 'k1', dir, taps);
  assert.notEqual(c.path, logitsOnly.path, 'the taps change the key');
  assert.deepEqual(c.layers, ['feat']);
  assert.equal(c.featureRefusal, null);
  assert.ok(c.covers(['feat']) && c.covers([]) && !c.covers(['feat', 'other']));
  assert.equal((await TeacherCache.build(t, plain, 'k1', dir, taps)).reused, true);
  const idx = Uint32Array.of(7, 2, 9);
  // Exact against the batches the cache was built from ([0..3], [4..7], [8, 9]; same batch sizes,
  // same oneDNN kernels): image 7 is row 3 of the second, 2 row 2 of the first, 9 row 1 of the third.
  const runBatch = (first: number, n: number) =>
    taps.view.run(
      tf.tensor4d(plain.makeBatch(Uint32Array.from({ length: n }, (_, i) => first + i)).x, [n, 4, 4, 1]),
    ) as { logits: tf.Tensor2D; features: tf.Tensor[] };
  const rowsOf = (t: tf.Tensor, rows: number[], d: number) =>
    rows.flatMap((r) => Array.from(t.dataSync().subarray(r * d, (r + 1) * d)));
  const [b0, b1, b2] = [runBatch(0, 4), runBatch(4, 4), runBatch(8, 2)];
  const [feat] = c.lookupFeatures(idx, ['feat']);
  assert.deepEqual(feat!.shape, [3, 5]);
  assert.deepEqual(Array.from(feat!.dataSync()), [
    ...rowsOf(b1.features[0]!, [3], 5),
    ...rowsOf(b0.features[0]!, [2], 5),
    ...rowsOf(b2.features[0]!, [1], 5),
  ]);
  assert.deepEqual(Array.from(c.lookup(idx).dataSync()), [
    ...rowsOf(b1.logits, [3], 3),
    ...rowsOf(b0.logits, [2], 3),
    ...rowsOf(b2.logits, [1], 3),
  ]);
  const small = await TeacherCache.build(t, plain, 'k1', dir, taps, 100);
  assert.match(
    small.featureRefusal!,
    /teacher features not cached: taps feat take 0 MiB for 10 images, over the 0 MiB limit/,
  );
  assert.deepEqual(small.layers, [], 'over the limit: logits only');
  assert.equal(small.path, logitsOnly.path);

  // One PKT step from the cache equals one from the live teacher.
  const terms = parseTerms(
    [{ name: 'pkt', weight: 1, taps: { student: { feat: 'feat' }, teacher: { feat: 'feat' } } }],
    't',
  );
  const student = tapped(11);
  const batch = plain.makeBatch(idx);
  const input = {
    x: tf.tensor4d(batch.x, [3, 4, 4, 1]),
    y: tf.tensor1d(Int32Array.from(batch.y), 'int32'),
    index: idx,
    epoch: 0,
  };
  const step = (cache: TeacherCache | null) => {
    const task = buildOfflineTask({ student, teacher: t, terms, cache });
    task.prepare!(input);
    const v = task.loss(input).total.dataSync()[0]!;
    task.release!();
    return v;
  };
  const live = step(null);
  assert.ok(Number.isFinite(live) && live > 0);
  // Zero the teacher: a step that still ran it now gives another value, so equality with `live`
  // below shows the features came from the cache.
  const weights = t.getWeights();
  t.setWeights(weights.map((w) => tf.zerosLike(w)));
  const poisoned = step(null);
  assert.ok(Math.abs(poisoned - live) > 1e-3 * live, `zeroed teacher: ${poisoned} vs ${live}`);
  // The cache holds rows computed in batches of 4 and 2, the step's batch has 3: equal to float
  // rounding (oneDNN picks kernels by batch size and ISA), not necessarily to the bit.
  const cached = step(c);
  assert.ok(Math.abs(cached - live) <= 1e-6 * live, `cached features: ${cached} vs live ${live}`);
  assert.equal(step(small), poisoned, 'a logits-only cache leaves the (zeroed) teacher live for features');
  t.setWeights(weights);
});

it('computes once, reuses by weights+data key, and returns rows by dataset index', async () => {
  await tf.setBackend('native');
  const plain = dataset(10, Uint32Array.of(1, 3, 5, 7, 9));
  const t = teacher();
  const a = await TeacherCache.build(t, plain, 'k1', dir);
  assert.equal(a.reused, false);
  const b = await TeacherCache.build(t, plain, 'k1', dir);
  assert.equal(b.reused, true);
  assert.equal(b.path, a.path);
  assert.notEqual(
    (await TeacherCache.build(t, plain, 'k2', dir)).path,
    a.path,
    'data key must change the cache',
  );
  const idx = Uint32Array.of(9, 3);
  const got = Array.from(b.lookup(idx).dataSync());
  // Exact against the batches the cache was built from ([1, 3, 5, 7] then [9]: same inputs, same
  // batch sizes, so the same oneDNN kernels): image 9 is the batch [9]'s row 0, image 3 is row 1.
  const live = (i: Uint32Array) =>
    Array.from((t.predict(tf.tensor4d(plain.makeBatch(i).x, [i.length, 4, 4, 1])) as tf.Tensor).dataSync());
  const first = live(Uint32Array.of(1, 3, 5, 7));
  assert.deepEqual(got, [...live(Uint32Array.of(9)), ...first.slice(3, 6)]);
  // Against a fresh batch [9, 3] only within float rounding: oneDNN picks its matmul kernel by
  // batch size and ISA (on AVX2 the rows of M = 2 and M = 4 differ in the 7th digit).
  const other = live(idx);
  for (const [i, v] of other.entries())
    assert.ok(Math.abs(got[i]! - v) <= 1e-5 * Math.max(1, Math.abs(v)), `row value ${i}: ${got[i]} vs ${v}`);
  const t2 = teacher(); // other weights: another cache
  assert.notEqual((await TeacherCache.build(t2, plain, 'k1', dir)).path, a.path);
});

it('refuses with a reason under augmentation', () => {
  assert.equal(cacheRefusal({ cropPadding: 0, hflip: false }), null);
  assert.match(
    cacheRefusal({ cropPadding: 4, hflip: true })!,
    /random crops \(cropPadding 4\) and horizontal flips change the inputs/,
  );
});
