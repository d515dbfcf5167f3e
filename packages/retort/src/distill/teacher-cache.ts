/**
 * Teacher outputs cached on disk so a frozen teacher runs once per dataset instead of once per
 * epoch. Valid only when the student sees exactly the images the cache was made from: with random
 * crops or flips every epoch shows new images, so the cache is refused and the reason logged.
 * Key: SHA-256 of the teacher's weights + the data/preprocessing key (+ the tapped layers when
 * features are cached); file: <dir>/<key>.ckpt.
 *
 * Besides the logits, the teacher's tapped features are cached when they fit `maxFeatureBytes`
 * (default 1 GiB for the whole training set, held in memory): a penultimate embedding (CRD, PKT,
 * RKD, CC: 64 floats per image on ResNet-20) is 15 MB for Fashion-MNIST and SP's last stage
 * (7 x 7 x 64) 718 MiB, so those methods stop running the teacher (a ResNet-20 forward is about 3x
 * a ResNet-8 one) every step; several stages of feature maps (AT, VID, AB: 5 GiB) stay live, with
 * the reason logged.
 *
 * For many runs spread over machines the same file can be made by n shard jobs, each running the
 * teacher over a contiguous run of the plain loader's batches (<key>.shard-<i>-of-<n>.ckpt), and a
 * merge that needs no teacher; the batches are the single pass's own, so on one machine the merged
 * file is the single pass's byte for byte.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Batch, BatchLoader } from '../data/loader.js';
import { asTeacher } from '../teachers/layers.js';
import type { Teacher, TeacherView } from '../teachers/types.js';
import { loadCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { RetortError } from '../util/errors.js';

/** Why teacher outputs cannot be cached for this data, or null when they can. */
export function cacheRefusal(data: { cropPadding: number; hflip: boolean }): string | null {
  const aug = [
    data.cropPadding > 0 ? `random crops (cropPadding ${data.cropPadding})` : '',
    data.hflip ? 'horizontal flips' : '',
  ]
    .filter(Boolean)
    .join(' and ');
  return aug ? `teacher outputs not cached: ${aug} change the inputs every epoch` : null;
}

/** Teacher taps to cache along with the logits: the tapped view and its layer names, in order. */
export interface CachedTaps {
  view: TeacherView;
  layers: readonly string[];
}

export const DEFAULT_MAX_FEATURE_BYTES = 2 ** 30;

export class TeacherCache {
  private constructor(
    /** Logits by dataset index, [datasetSize, K]. */
    private readonly logits: Float32Array,
    readonly numClasses: number,
    readonly path: string,
    readonly reused: boolean,
    /** Tapped layers whose features are cached, in tap order (empty: logits only). */
    readonly layers: readonly string[],
    /** Features by tap, [datasetSize, ...shape]. */
    private readonly features: readonly Float32Array[],
    private readonly shapes: readonly number[][],
    /** Why the taps are not cached (over the size limit), or null. */
    readonly featureRefusal: string | null,
  ) {}

  /**
   * Loads the cache for (teacher, data[, taps]) from `dir`, or computes it by running the teacher
   * (or its tapped view) over `plain` (the un-augmented training loader) and writes it atomically.
   * Taps whose features would exceed `maxFeatureBytes` are not cached (featureRefusal says why).
   */
  static async build(
    teacherOrModel: Teacher | tfl.LayersModel,
    plain: BatchLoader,
    dataKey: string,
    dir: string,
    taps?: CachedTaps,
    maxFeatureBytes = DEFAULT_MAX_FEATURE_BYTES,
  ): Promise<TeacherCache> {
    const teacher = asTeacher(teacherOrModel);
    const size = plain.data.count;
    const lay = teacherCacheLayout(teacher, size, taps, maxFeatureBytes);
    const { layers, shapes, per, numClasses: K } = lay;
    const path = join(dir, `${teacherCacheKey(teacher, dataKey, layers)}.ckpt`);
    if (existsSync(path)) {
      const ck = loadCheckpoint(path);
      const v = ck.values.get('logits');
      const fs = layers.map((_, i) => ck.values.get(`feature${i}`));
      if (
        v === undefined ||
        v.data.length !== size * K ||
        fs.some((f, i) => f?.data.length !== size * per[i]!)
      )
        throw new Error(`teacher cache ${path}: wrong contents; delete it to rebuild`);
      return new TeacherCache(
        v.data,
        K,
        path,
        true,
        layers,
        fs.map((f) => f!.data),
        shapes,
        lay.featureRefusal,
      );
    }
    const logits = new Float32Array(size * K);
    const features = per.map((d) => new Float32Array(size * d));
    // Rows land at their dataset index, so any batch order (a shuffling loader too) fills them.
    await runTeacher(teacher, lay, plain, plain.epoch(), { logits, features }, (b, k) => b.index[k]!);
    writeTeacherCache(path, dataKey, lay, size, logits, features);
    return new TeacherCache(logits, K, path, false, layers, features, shapes, lay.featureRefusal);
  }

  /** Whether every layer of `taps` is cached (in any order). */
  covers(taps: readonly string[]): boolean {
    return taps.every((t) => this.layers.includes(t));
  }

  /** Teacher logits [n, K] for dataset indices `index`. */
  lookup(index: Uint32Array): tf.Tensor2D {
    return tf.tensor2d(gatherRows(this.logits, this.numClasses, index), [index.length, this.numClasses]);
  }

  /** Cached features of `taps` (each a cached layer) for dataset indices `index`, in `taps`' order. */
  lookupFeatures(index: Uint32Array, taps: readonly string[]): tf.Tensor[] {
    return taps.map((t) => {
      const i = this.layers.indexOf(t);
      if (i < 0) throw new Error(`teacher cache ${this.path}: tap '${t}' is not cached`);
      const shape = this.shapes[i]!;
      const d = shape.reduce((a, b) => a * b, 1);
      return tf.tensor(gatherRows(this.features[i]!, d, index), [index.length, ...shape]);
    });
  }
}

/** Rows `index` of a row-major [*, d] array. */
function gatherRows(src: Float32Array, d: number, index: Uint32Array): Float32Array {
  const out = new Float32Array(index.length * d);
  for (let k = 0; k < index.length; k++) out.set(src.subarray(index[k]! * d, (index[k]! + 1) * d), k * d);
  return out;
}

/**
 * The cache's key: the first 32 hex digits of SHA-256 over the teacher's identity (weights and
 * preprocessing), the data key and, when features are cached, the tapped layers in order.
 */
export function teacherCacheKey(
  teacher: Teacher | tfl.LayersModel,
  dataKey: string,
  layers: readonly string[],
): string {
  const h = createHash('sha256').update(asTeacher(teacher).identity()).update(dataKey);
  if (layers.length > 0) h.update(`\0taps:${layers.join(',')}`);
  return h.digest('hex').slice(0, 32);
}

/** What a cache of `size` examples holds: the logits, and the taps whose features fit the limit. */
export interface TeacherCacheLayout {
  numClasses: number;
  /** Tapped layers whose features are cached, in tap order (empty: logits only). */
  layers: string[];
  /** Per-example shape of each cached tap. */
  shapes: number[][];
  /** Values per example of each cached tap. */
  per: number[];
  /** The tapped view that computes the cached features; undefined when only logits are cached. */
  view: TeacherView | undefined;
  /** Why the taps are not cached (over the size limit), or null. */
  featureRefusal: string | null;
}

/** The layout of the cache of `teacher` over `size` examples with `taps` (see TeacherCache.build). */
export function teacherCacheLayout(
  teacher: Teacher,
  size: number,
  taps?: CachedTaps,
  maxFeatureBytes = DEFAULT_MAX_FEATURE_BYTES,
): TeacherCacheLayout {
  const per = taps ? taps.view.shapes.map((s) => s.reduce((a, b) => a * b, 1)) : [];
  const featBytes = per.reduce((a, b) => a + b, 0) * size * 4;
  let refusal: string | null = null;
  if (taps && taps.layers.length > 0 && featBytes > maxFeatureBytes)
    refusal = `teacher features not cached: taps ${taps.layers.join(', ')} take ${(featBytes / 2 ** 20).toFixed(0)} MiB for ${size} images, over the ${(maxFeatureBytes / 2 ** 20).toFixed(0)} MiB limit; the teacher runs every step`;
  const cached = taps && refusal === null ? taps : undefined;
  return {
    numClasses: teacher.numClasses,
    layers: cached ? [...cached.layers] : [],
    shapes: cached ? cached.view.shapes : [],
    per: cached ? per : [],
    view: cached?.view,
    featureRefusal: refusal,
  };
}

/**
 * Runs the teacher (the layout's view, or its bare logits) over `batches` and copies example k of
 * each batch to row `rowOf(batch, k, rowsBefore)` of `out` (logits [*, K], features [*, per[i]]).
 */
async function runTeacher(
  teacher: Teacher,
  lay: TeacherCacheLayout,
  plain: BatchLoader,
  batches: Iterable<Batch>,
  out: { logits: Float32Array; features: Float32Array[] },
  rowOf: (b: Batch, k: number, rowsBefore: number) => number,
): Promise<void> {
  const K = lay.numClasses;
  const shape = [plain.data.height, plain.data.width, plain.data.channels];
  const view = lay.view ?? teacher.tap([]);
  let done = 0;
  for (const b of batches) {
    // With paired views the teacher sees its own view of the samples.
    const x = b.teacherX ? tf.tensor(b.teacherX, [b.n, ...b.teacherShape!]) : tf.tensor(b.x, [b.n, ...shape]);
    const r = await view.run(x);
    x.dispose();
    const outs = [r.logits, ...r.features];
    const put = (vals: Float32Array, dst: Float32Array, d: number) => {
      for (let k = 0; k < b.n; k++) dst.set(vals.subarray(k * d, (k + 1) * d), rowOf(b, k, done) * d);
    };
    put(outs[0]!.dataSync() as Float32Array, out.logits, K);
    for (const [i, f] of out.features.entries()) put(outs[i + 1]!.dataSync() as Float32Array, f, lay.per[i]!);
    tf.dispose(outs);
    done += b.n;
  }
}

/**
 * Writes the cache file: logits [size, K] and feature<i> [size, ...shape] by dataset index, meta
 * { dataKey, taps }. The one writer of the format, so a merged file has a single pass's bytes.
 */
function writeTeacherCache(
  path: string,
  dataKey: string,
  lay: Pick<TeacherCacheLayout, 'numClasses' | 'layers' | 'shapes'>,
  size: number,
  logits: Float32Array,
  features: readonly Float32Array[],
): void {
  mkdirSync(dirname(path), { recursive: true });
  const ts = [
    { name: 'logits', tensor: tf.tensor2d(logits, [size, lay.numClasses]) as tf.Tensor },
    ...features.map((f, i) => ({ name: `feature${i}`, tensor: tf.tensor(f, [size, ...lay.shapes[i]!]) })),
  ];
  try {
    saveCheckpoint(path, { epoch: 0, globalStep: 0, meta: { dataKey, taps: [...lay.layers] } }, ts);
  } finally {
    tf.dispose(ts.map((t) => t.tensor));
  }
}

// ---- shards: the same cache computed by n jobs and merged

/**
 * Batches [from, to) of a loader's `length` batches that shard `i` of `n` computes: contiguous and
 * as even as whole batches allow (a shard is empty when n exceeds the batches).
 */
export function shardBatches(length: number, i: number, n: number): { from: number; to: number } {
  if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(i) || i < 0 || i >= n)
    throw new RetortError(
      `teacher cache shard ${i} of ${n}: expected whole numbers with n >= 1 and 0 <= i < n`,
    );
  return { from: Math.floor((i * length) / n), to: Math.floor(((i + 1) * length) / n) };
}

/**
 * The dataset indices of `plain`'s epoch in batch order. Shards need the order fixed: a shuffling
 * or augmenting loader would show each job other batches (oneDNN's results depend on a batch's
 * make-up, so even the same images batched differently could change the bits).
 */
function epochOrder(plain: BatchLoader): Uint32Array {
  const o = plain.opts;
  if (o.shuffle || (o.cropPadding ?? 0) > 0 || o.hflip === true)
    throw new RetortError(
      `teacher cache shards of ${plain.name}: the loader shuffles or augments; shards need the plain (un-augmented, in-order) training loader`,
    );
  return o.indices ?? Uint32Array.from({ length: plain.data.count }, (_, i) => i);
}

/** Positions [from, to) in the epoch's order of the examples in batches [from, to). */
function itemRange(
  plain: BatchLoader,
  order: Uint32Array,
  b: { from: number; to: number },
): [number, number] {
  const bs = plain.batchSize;
  return [Math.min(b.from * bs, order.length), Math.min(b.to * bs, order.length)];
}

/** One shard's rows: teacher outputs for a contiguous run of the plain loader's batches. */
export interface TeacherShardRows {
  /** Batches [from, to) of the plain loader's epoch. */
  batches: [number, number];
  /** Positions [from, to) in the epoch's order of the examples the rows hold. */
  items: [number, number];
  /** [rows] dataset index of each row. */
  index: Uint32Array;
  /** [rows, K] in batch order. */
  logits: Float32Array;
  /** Per cached tap, [rows, ...shape]. */
  features: Float32Array[];
  layout: TeacherCacheLayout;
}

/**
 * Teacher outputs for shard `i` of `n` of `plain`'s batches (the un-augmented, in-order training
 * loader): each batch is the very batch a single pass (TeacherCache.build) runs, so its rows are
 * the single pass's rows bit for bit on the same machine. Taps as in TeacherCache.build.
 */
export async function teacherShardRows(
  teacherOrModel: Teacher | tfl.LayersModel,
  plain: BatchLoader,
  i: number,
  n: number,
  taps?: CachedTaps,
  maxFeatureBytes = DEFAULT_MAX_FEATURE_BYTES,
): Promise<TeacherShardRows> {
  const teacher = asTeacher(teacherOrModel);
  const order = epochOrder(plain);
  const range = shardBatches(plain.length, i, n);
  const items = itemRange(plain, order, range);
  const lay = teacherCacheLayout(teacher, plain.data.count, taps, maxFeatureBytes);
  const rows = items[1] - items[0];
  const logits = new Float32Array(rows * lay.numClasses);
  const features = lay.per.map((d) => new Float32Array(rows * d));
  const bs = plain.batchSize;
  // The slices BatchLoader.epoch() cuts from the same order, without assembling the other batches.
  function* batches(): Generator<Batch> {
    for (let b = range.from; b < range.to; b++)
      yield plain.makeBatch(order.subarray(b * bs, Math.min((b + 1) * bs, order.length)));
  }
  await runTeacher(teacher, lay, plain, batches(), { logits, features }, (_, k, before) => before + k);
  return {
    batches: [range.from, range.to],
    items,
    index: order.slice(items[0], items[1]),
    logits,
    features,
    layout: lay,
  };
}

/** Where shard `i` of `n` of the cache `key` lives. */
export function teacherShardPath(dir: string, key: string, i: number, n: number): string {
  return join(dir, `${key}.shard-${i}-of-${n}.ckpt`);
}

/**
 * Computes shard `i` of `n` of the cache TeacherCache.build would make from the same arguments and
 * writes it atomically to <dir>/<key>.shard-<i>-of-<n>.ckpt: logits [rows, K] and feature<j>
 * [rows, ...shape] in batch order, meta naming the cache, the shard and the batch and item ranges.
 * Returns the path.
 */
export async function writeTeacherShard(
  teacherOrModel: Teacher | tfl.LayersModel,
  plain: BatchLoader,
  dataKey: string,
  dir: string,
  i: number,
  n: number,
  taps?: CachedTaps,
  maxFeatureBytes = DEFAULT_MAX_FEATURE_BYTES,
): Promise<string> {
  const teacher = asTeacher(teacherOrModel);
  const r = await teacherShardRows(teacher, plain, i, n, taps, maxFeatureBytes);
  const { layers, shapes, numClasses } = r.layout;
  const key = teacherCacheKey(teacher, dataKey, layers);
  const path = teacherShardPath(dir, key, i, n);
  const rows = r.index.length;
  const meta: ShardMeta = {
    key,
    dataKey,
    taps: layers,
    shard: i,
    of: n,
    size: plain.data.count,
    batchSize: plain.batchSize,
    batches: r.batches,
    items: r.items,
  };
  mkdirSync(dir, { recursive: true });
  const ts = [
    { name: 'logits', tensor: tf.tensor2d(r.logits, [rows, numClasses]) as tf.Tensor },
    ...r.features.map((f, j) => ({ name: `feature${j}`, tensor: tf.tensor(f, [rows, ...shapes[j]!]) })),
  ];
  try {
    saveCheckpoint(path, { epoch: 0, globalStep: 0, meta: { ...meta } }, ts);
  } finally {
    tf.dispose(ts.map((t) => t.tensor));
  }
  return path;
}

/** A shard file's meta (checked field by field when merging). */
interface ShardMeta {
  key: string;
  dataKey: string;
  taps: string[];
  shard: number;
  of: number;
  /** Examples in the dataset (rows of the merged cache). */
  size: number;
  batchSize: number;
  batches: [number, number];
  items: [number, number];
}

/**
 * Merges the `n` shard files of cache `key` in `dir` (writeTeacherShard with the same plain loader,
 * data key and cached taps `layers`) into <dir>/<key>.ckpt, byte for byte the file
 * TeacherCache.build writes, and deletes the shards unless `keepShards`. Every shard is checked
 * (present, same cache, the batch range and rows it should hold) before anything is written; a
 * problem is a RetortError naming the file. Returns the merged file's path.
 */
export function mergeTeacherShards(o: {
  plain: BatchLoader;
  dataKey: string;
  /** The cached taps (TeacherCacheLayout.layers; empty: logits only). */
  layers: readonly string[];
  dir: string;
  key: string;
  n: number;
  keepShards?: boolean;
}): string {
  const { plain, n } = o;
  const order = epochOrder(plain);
  const size = plain.data.count;
  const path = join(o.dir, `${o.key}.ckpt`);
  shardBatches(plain.length, 0, n); // checks n
  const paths = Array.from({ length: n }, (_, i) => teacherShardPath(o.dir, o.key, i, n));
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length > 0)
    throw new RetortError(
      `teacher cache ${path}: ${missing.length} of ${n} shard files missing (${missing.join(', ')}); run those shard jobs first`,
      { file: missing[0]! },
    );
  let K = 0;
  let shapes: number[][] = [];
  let per: number[] = [];
  let logits = new Float32Array(0);
  let features: Float32Array[] = [];
  for (const [i, p] of paths.entries()) {
    const bad = (why: string) =>
      new RetortError(`teacher cache shard ${p}: ${why}; delete it and run shard job ${i} of ${n} again`, {
        file: p,
      });
    const ck = loadCheckpoint(p);
    const m = ck.header.meta as Partial<ShardMeta>;
    const range = shardBatches(plain.length, i, n);
    const want: ShardMeta = {
      key: o.key,
      dataKey: o.dataKey,
      taps: [...o.layers],
      shard: i,
      of: n,
      size,
      batchSize: plain.batchSize,
      batches: [range.from, range.to],
      items: itemRange(plain, order, range),
    };
    for (const f of Object.keys(want) as (keyof ShardMeta)[]) {
      const [got, exp] = [JSON.stringify(m[f]), JSON.stringify(want[f])];
      if (got !== exp)
        throw bad(
          f === 'key'
            ? `belongs to cache ${got}, not ${exp}`
            : `${f} is ${got ?? 'missing'}, expected ${exp}`,
        );
    }
    const [from, to] = want.items;
    const rows = to - from;
    const names = ck.header.tensors.map((t) => t.name);
    const wantNames = ['logits', ...o.layers.map((_, j) => `feature${j}`)];
    if (names.join() !== wantNames.join()) throw bad(`holds tensors [${names}], expected [${wantNames}]`);
    const lg = ck.values.get('logits')!;
    const fs = o.layers.map((_, j) => ck.values.get(`feature${j}`)!);
    if (i === 0) {
      // The first shard fixes the classes and the feature shapes; the others must agree.
      K = lg.shape[1] ?? 0;
      shapes = fs.map((f) => f.shape.slice(1));
      logits = new Float32Array(size * K);
      per = shapes.map((s) => s.reduce((a, b) => a * b, 1));
      features = per.map((d) => new Float32Array(size * d));
    }
    const shapeOk = (got: number[], inner: number[]) => got.join() === [rows, ...inner].join();
    if (!shapeOk(lg.shape, [K])) throw bad(`logits are [${lg.shape}], expected [${[rows, K]}]`);
    for (const [j, f] of fs.entries())
      if (!shapeOk(f.shape, shapes[j]!))
        throw bad(`feature${j} is [${f.shape}], expected [${[rows, ...shapes[j]!]}]`);
    // Rows are in epoch order: row r is the example at position from + r.
    const place = (src: Float32Array, dst: Float32Array, d: number) => {
      for (let r = 0; r < rows; r++) dst.set(src.subarray(r * d, (r + 1) * d), order[from + r]! * d);
    };
    place(lg.data, logits, K);
    for (const [j, f] of fs.entries()) place(f.data, features[j]!, per[j]!);
  }
  writeTeacherCache(
    path,
    o.dataKey,
    { numClasses: K, layers: [...o.layers], shapes },
    size,
    logits,
    features,
  );
  if (o.keepShards !== true) for (const p of paths) rmSync(p, { force: true });
  return path;
}
