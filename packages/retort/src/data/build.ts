/** Builds the loaders an experiment's `data` section describes. */

import { createHash } from 'node:crypto';
import { extname, join, resolve } from 'node:path';
import { RetortError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { loadCifar } from './cifar.js';
import { loadCsv } from './csv.js';
import {
  channelStats,
  checkClasses,
  type ImageDataset,
  isLazy,
  trainValSplit,
  validateDataset,
} from './dataset.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadIdxSplit } from './fashion-mnist.js';
import { imageFolderItems, loadImageFolder } from './image-folder.js';
import { BatchLoader, type Loader } from './loader.js';
import { isStream, type StreamDataset, StreamLoader } from './stream.js';
import { type LoaderView, type LoaderViews, type Views, viewFormula, viewShape } from './views.js';

export interface DataConfig {
  dataset: 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'image-folder' | 'csv' | 'code';
  dir?: string | undefined;
  channels?: 1 | 3 | undefined;
  labelColumn?: string | undefined;
  resize?: readonly [number, number] | undefined;
  stream?: boolean | undefined;
  batchSize: number;
  valFraction: number;
  cropPadding: number;
  hflip: boolean;
  trainLimit?: number | undefined;
  testLimit?: number | undefined;
  /** Fixed per-channel mean/std of [0, 1] pixels instead of the training split's statistics. */
  normalize?: { mean: readonly number[]; std: readonly number[] } | undefined;
  /** Paired views for cross-modal distillation (views.ts). */
  views?: Views | undefined;
}

/** The loaders of an experiment: BatchLoaders (random access) unless a split is streamed. */
export interface ExperimentData<L extends Loader = Loader> {
  train: L;
  /** Held-out part of the training set, or the test split when valFraction is 0. */
  val: L;
  test: L;
  /** The same training images without augmentation or shuffling (teacher caches use it). */
  trainPlain: L;
  /** [H, W, C] of what the student sees (its view, with data.views). */
  shape: [number, number, number];
  /** With data.views: [H, W, C] of the teacher's view (batches carry it as teacherX). */
  teacherShape?: [number, number, number] | undefined;
  numClasses: number;
  /** Per-channel normalisation of the student's input (its stored view's own, when it has one). */
  mean: number[];
  std: number[];
  /** With data.views: the normalisation of what the teacher's view is made from. */
  teacherMean?: number[] | undefined;
  teacherStd?: number[] | undefined;
  /** Identifies the data and preprocessing (cache keys). */
  key: string;
  /** Class names in label order, when the dataset has them. */
  classNames?: readonly string[] | undefined;
  /** How an input value comes from the data, when not `(p / 255 - mean[c]) / std[c]` of a pixel p. */
  inputFormula?: string | undefined;
}

const DEFAULT_DIRS: Partial<Record<DataConfig['dataset'], string>> = {
  'fashion-mnist': FASHION_MNIST_DIR,
  mnist: '/usr/share/datasets/mnist',
};

/** The first `limit` examples of a dataset (quick runs). */
function head(d: ImageDataset, limit?: number): ImageDataset {
  if (limit === undefined || limit >= d.count) return d;
  const per = d.height * d.width * d.channels;
  return {
    ...d,
    count: limit,
    images: isLazy(d.images) ? d.images : d.images.subarray(0, limit * per),
    labels: d.labels.subarray(0, limit),
  };
}

/** The reader options of a source: the data section's, or a stored view's (views.ts). */
type SourceConfig = Pick<
  DataConfig,
  | 'dataset'
  | 'dir'
  | 'channels'
  | 'labelColumn'
  | 'resize'
  | 'stream'
  | 'cropPadding'
  | 'hflip'
  | 'trainLimit'
  | 'testLimit'
>;

/** A source's train and test splits and where they came from. */
interface Source {
  /** Its folder, or 'code' for splits a program passed. */
  dir: string;
  /** How messages name it: the folder, or which splits from code. */
  label: string;
  train: ImageDataset;
  test: ImageDataset;
}

/** Reads a source's files (`where` names its config section in errors): the main data or a stored view. */
function readSource(cfg: SourceConfig, where: string): Source {
  const dir = cfg.dir ?? DEFAULT_DIRS[cfg.dataset];
  if (dir === undefined)
    throw new RetortError(
      `${where}.dir: the ${cfg.dataset} dataset has no default location; give the folder with its files`,
    );
  return { dir, label: dir, ...readSplits(cfg, dir) };
}

/** Both splits valid, with items of one shape: a model takes one input shape. */
function checkSplits({ train, test }: Source): void {
  validateDataset(train);
  validateDataset(test);
  // A test split of 14x56 images beside 28x28 training images (the same pixel count) would
  // otherwise be read as if it fit.
  const dims = (d: ImageDataset) => `${d.height}x${d.width}x${d.channels}`;
  if (dims(train) !== dims(test))
    throw new RetortError(
      `${test.name}: items are ${dims(test)}, the training split's (${train.name}) are ${dims(train)}`,
    );
}

/** Train and test splits of the configured dataset, checked. */
function readSplits(cfg: SourceConfig, dir: string): { train: ImageDataset; test: ImageDataset } {
  switch (cfg.dataset) {
    case 'fashion-mnist':
    case 'mnist':
      return {
        train: idxDataset(dir, 'train', cfg.dataset, cfg.trainLimit),
        test: idxDataset(dir, 't10k', cfg.dataset, cfg.testLimit),
      };
    case 'cifar10':
    case 'cifar100':
      return {
        train: head(loadCifar(dir, cfg.dataset, 'train'), cfg.trainLimit),
        test: head(loadCifar(dir, cfg.dataset, 'test'), cfg.testLimit),
      };
    case 'image-folder': {
      const common = { resize: cfg.resize, stream: cfg.stream };
      const train = loadImageFolder(dir, 'train', cfg.channels ?? 3, { ...common, limit: cfg.trainLimit });
      const test = loadImageFolder(dir, 'test', cfg.channels ?? 3, { ...common, limit: cfg.testLimit });
      if (test.classNames?.join('\n') !== train.classNames?.join('\n'))
        throw new RetortError(
          `image folder ${dir}: test classes (${test.classNames?.join(', ')}) differ from train classes (${train.classNames?.join(', ')})`,
        );
      if (test.height !== train.height || test.width !== train.width)
        throw new RetortError(
          `image folder ${dir}: test images are ${test.width}x${test.height}, train images ${train.width}x${train.height}`,
        );
      return { train, test };
    }
    case 'csv': {
      if (cfg.cropPadding > 0 || cfg.hflip)
        throw new RetortError(
          'data: cropPadding and hflip apply to images; a csv dataset has neither (set them to 0 / false)',
        );
      const labelColumn = cfg.labelColumn ?? 'label';
      const train = loadCsv(join(dir, 'train.csv'), { labelColumn });
      const test = loadCsv(join(dir, 'test.csv'), {
        labelColumn,
        classNames: train.classNames,
        featureNames: train.featureNames,
      });
      return { train: head(train, cfg.trainLimit), test: head(test, cfg.testLimit) };
    }
    case 'code':
      throw new RetortError("data.dataset 'code' has no files to read");
  }
}

function idxDataset(dir: string, split: 'train' | 't10k', name: string, limit?: number): ImageDataset {
  const s = loadIdxSplit(dir, split);
  const count = Math.min(s.count, limit ?? s.count);
  return {
    name: `${name}/${split}`,
    images: s.images.subarray(0, count * s.height * s.width),
    labels: s.labels.subarray(0, count),
    count,
    height: s.height,
    width: s.width,
    channels: 1,
    numClasses: s.numClasses,
    classNames: name === 'fashion-mnist' ? FASHION_MNIST_CLASSES : undefined,
  } as ImageDataset;
}

/** Train and test splits a program passes in (`dataset: code`); see arrayDataset and batchStream. */
export interface DataSplits {
  train: ImageDataset | StreamDataset;
  test: ImageDataset | StreamDataset;
  /**
   * Stored views from the program (`data.views.<side>: { kind: stored, dataset: code }`): item i of
   * each split pairs with item i of the data's split.
   */
  views?: { student?: PairedSplits | undefined; teacher?: PairedSplits | undefined } | undefined;
}

/** The splits of a second modality, aligned item by item with the data's. */
export interface PairedSplits {
  train: ImageDataset;
  test: ImageDataset;
}

/**
 * Loaders for splits of which at least one is streamed by the program: batches arrive in the
 * program's order and with its augmentation, so the options that need random access are refused.
 */
function streamData(cfg: DataConfig, given: DataSplits): ExperimentData {
  const { train } = given;
  let { test } = given;
  // Arrays for training and a stream for testing: the arrays would need their own statistics,
  // split, augmentation and cache key, which the array path gives; one kind per run keeps both right.
  if (!isStream(train))
    throw new RetortError(
      `data: ${test.name} is streamed but the training split ${train.name} is not; stream both, or give the test split as arrays too`,
    );
  const refuse = (key: string, why: string) => {
    throw new RetortError(`data.${key}: ${why} (the training split is streamed)`);
  };
  if (cfg.valFraction > 0)
    refuse('valFraction', 'a validation split needs random access; pass one as the test split');
  if (cfg.cropPadding > 0 || cfg.hflip)
    refuse(cfg.hflip ? 'hflip' : 'cropPadding', 'augment inside your stream');
  if (cfg.trainLimit !== undefined) refuse('trainLimit', 'a stream ends where your program ends it');
  if (cfg.normalize !== undefined) refuse('normalize', 'give mean and std to batchStream instead');
  if (cfg.views !== undefined) refuse('views', 'make both views inside your program');
  if (cfg.testLimit !== undefined && isStream(test))
    refuse('testLimit', 'a stream ends where your program ends it');
  // A test stream that states no normalisation takes the training stream's.
  if (isStream(test) && !test.normGiven) test = { ...test, mean: [...train.mean], std: [...train.std] };
  const dims = (d: ImageDataset | StreamDataset) =>
    (isStream(d) ? d.shape : [d.height, d.width, d.channels]).join('x');
  if (dims(train) !== dims(test))
    throw new RetortError(
      `${test.name}: items are ${dims(test)}, the training split's (${train.name}) are ${dims(train)}`,
    );
  if (train.numClasses !== test.numClasses)
    throw new RetortError(
      `${test.name}: ${test.numClasses} classes, the training split has ${train.numClasses}`,
    );
  const mean = [...train.mean];
  const std = [...train.std];
  let testLoader: Loader;
  if (isStream(test)) {
    if (test.mean.join() !== mean.join() || test.std.join() !== std.join())
      throw new RetortError(
        `${test.name}: mean/std [${test.mean}]/[${test.std}] differ from the training split's [${mean}]/[${std}]`,
      );
    testLoader = new StreamLoader(test);
  } else {
    const t = head(test, cfg.testLimit);
    validateDataset(t);
    testLoader = new BatchLoader(t, { mean, std, batchSize: 500, shuffle: false, keepLast: true, seed: 0 });
  }
  return {
    train: new StreamLoader(train),
    val: testLoader,
    test: testLoader,
    trainPlain: new StreamLoader(train),
    shape: [...train.shape] as [number, number, number],
    numClasses: train.numClasses,
    mean,
    std,
    classNames: train.classNames,
    key: JSON.stringify({ d: 'stream', train: train.name, test: test.name }),
    inputFormula:
      'x[n, y, x, c] = (v / 255 - mean[c]) / std[c] for 8-bit values v, (v - mean[c]) / std[c] for float values, v as the training program streamed them',
  };
}

/**
 * The loaders of `cfg`; with `dataset: code` the splits come from `given` (data made by the user's
 * program), with every other reader from files.
 */
export function buildData(
  cfg: DataConfig,
  seed: number,
  given?: { train: ImageDataset; test: ImageDataset },
): ExperimentData<BatchLoader>;
export function buildData(cfg: DataConfig, seed: number, given?: DataSplits): ExperimentData;
export function buildData(cfg: DataConfig, seed: number, given?: DataSplits): ExperimentData {
  let main: Source;
  if (cfg.dataset === 'code') {
    if (given === undefined)
      throw new RetortError(
        "data.dataset is 'code': pass the splits from your program (train(config, { data: { train, test } }))",
      );
    if (isStream(given.train) || isStream(given.test)) return streamData(cfg, given);
    main = fromCode(given.train, given.test, cfg, 'the arrays from code');
  } else {
    if (given !== undefined)
      throw new RetortError(`data: splits from code need data.dataset 'code', not '${cfg.dataset}'`);
    main = readSource(cfg, 'data');
  }
  checkSplits(main);
  const { dir, train, test } = main;
  checkClasses(train);
  const split = trainValSplit(train.count, cfg.valFraction, new Rng(seed ^ 0x5eed).permutation(train.count));
  const { mean, std } = normalisation(train, split.train, cfg.normalize, 'data');
  const base: [number, number, number] = [train.height, train.width, train.channels];
  const views = cfg.views;
  const stored = storedViews(cfg, main, split.train, given);
  // What a loader of one split applies: transforms as configured, stored views as that split's items.
  const loaderViews = (s: 'train' | 'test'): LoaderViews | undefined => {
    if (views === undefined) return undefined;
    const of = (side: 'student' | 'teacher'): LoaderView | undefined => {
      const v = views[side];
      if (v?.kind !== 'stored') return v;
      const p = stored[side]!;
      return { kind: 'paired', data: p[s], mean: p.mean, std: p.std, source: p.source };
    };
    return { student: of('student'), teacher: of('teacher') };
  };
  const trainViews = loaderViews('train');
  const student = trainViews?.student;
  const shape = student ? viewShape(student, base, 'data.views.student') : base;
  const teacherShape = trainViews
    ? viewShape(trainViews.teacher ?? { kind: 'identity' }, base, 'data.views.teacher')
    : undefined;
  const common = (s: 'train' | 'test') => {
    const v = loaderViews(s);
    return { mean, std, batchSize: cfg.batchSize, ...(v ? { views: v } : {}) };
  };
  const trainLoader = new BatchLoader(train, {
    ...common('train'),
    shuffle: true,
    indices: split.train,
    cropPadding: cfg.cropPadding,
    hflip: cfg.hflip,
    seed,
  });
  const evalOf = (d: ImageDataset, s: 'train' | 'test', indices?: Uint32Array) =>
    new BatchLoader(d, {
      ...common(s),
      batchSize: 500,
      shuffle: false,
      keepLast: true,
      seed: 0,
      ...(indices ? { indices } : {}),
    });
  const testLoader = evalOf(test, 'test');
  const formula = student ? viewFormula(student, base) : undefined;
  const ownNorm = (side: 'student' | 'teacher') => {
    const p = stored[side];
    return p ? { mean: [...p.mean], std: [...p.std] } : { mean, std };
  };
  const sNorm = ownNorm('student');
  const tNorm = ownNorm('teacher');
  return {
    train: trainLoader,
    val: cfg.valFraction > 0 ? evalOf(train, 'train', split.val) : testLoader,
    test: testLoader,
    trainPlain: evalOf(train, 'train', split.train),
    shape,
    teacherShape,
    ...(formula ? { inputFormula: formula } : {}),
    numClasses: train.numClasses,
    mean: sNorm.mean,
    std: sNorm.std,
    ...(views ? { teacherMean: tNorm.mean, teacherStd: tNorm.std } : {}),
    classNames: train.classNames,
    key: JSON.stringify({
      d: cfg.dataset,
      // Absolute, so that one relative folder seen from two working directories is two keys.
      dir: cfg.dataset === 'code' ? 'code' : resolve(dir),
      ...(cfg.dataset === 'image-folder' ? { channels: cfg.channels ?? 3, resize: cfg.resize ?? null } : {}),
      ...(cfg.dataset === 'csv' ? { label: cfg.labelColumn ?? 'label' } : {}),
      n: train.count,
      // The bytes themselves: a file edited in place keeps its name and maybe its size and mtime.
      content: contentDigest(train),
      val: cfg.valFraction,
      seed: cfg.valFraction > 0 ? seed : 0,
      // The teacher's cached outputs depend on the inputs it saw, normalisation included.
      ...(cfg.normalize ? { norm: { mean, std } } : {}),
      ...(views ? { views: viewsKey(views, stored) } : {}),
    }),
  };
}

/** The first trainLimit / testLimit items of splits a program passed, with one class count. */
function fromCode(trainIn: ImageDataset, testIn: ImageDataset, cfg: DataConfig, label: string): Source {
  const train = head(trainIn, cfg.trainLimit);
  const test = head(testIn, cfg.testLimit);
  if (train.numClasses !== test.numClasses)
    throw new RetortError(
      `${test.name}: ${test.numClasses} classes, the training split has ${train.numClasses}`,
    );
  return { dir: 'code', label, train, test };
}

/** Per-channel mean/std: as `given`, or the statistics of `d`'s items `indices` (the training part). */
function normalisation(
  d: ImageDataset,
  indices: Uint32Array,
  given: { mean: readonly number[]; std: readonly number[] } | undefined,
  where: string,
): { mean: number[]; std: number[] } {
  if (given)
    return {
      mean: perChannel(`${where}.normalize.mean`, given.mean, d.channels),
      std: perChannel(`${where}.normalize.std`, given.std, d.channels),
    };
  const stats = channelStats(d, indices);
  // A constant feature or channel has std 0: leave it unscaled instead of dividing by zero.
  return { mean: stats.mean, std: stats.std.map((s) => (s > 0 ? s : 1)) };
}

/** A stored view read and paired: its splits, its normalisation and what it is. */
interface StoredSource extends Source {
  mean: number[];
  std: number[];
  /** e.g. 'image-folder /data/depth', for messages and sidecars. */
  source: string;
}

/**
 * Reads the stored views of `cfg.views` (from files, or from `given.views` for `dataset: code`),
 * checks that each pairs with the data item by item, and normalises each with its own statistics
 * over the training part `trainIdx` (the data's split: one permutation keeps the pairs aligned).
 */
function storedViews(
  cfg: DataConfig,
  main: Source,
  trainIdx: Uint32Array,
  given: DataSplits | undefined,
): { student?: StoredSource; teacher?: StoredSource } {
  const out: { student?: StoredSource; teacher?: StoredSource } = {};
  for (const side of ['student', 'teacher'] as const) {
    const v = cfg.views?.[side];
    const where = `data.views.${side}`;
    const fromProgram = given?.views?.[side];
    if (fromProgram !== undefined && (v?.kind !== 'stored' || v.dataset !== 'code'))
      throw new RetortError(
        `data: the splits from code carry views.${side}, but ${where} is not { kind: stored, dataset: code }`,
      );
    if (v?.kind !== 'stored') continue;
    let src: Source;
    if (v.dataset === 'code') {
      if (fromProgram === undefined)
        throw new RetortError(
          `${where} is a view from code: pass its splits with the data's (train(config, { data: { train, test, views: { ${side}: { train, test } } } }))`,
        );
      src = fromCode(fromProgram.train, fromProgram.test, cfg, `the views.${side} arrays from code`);
    } else {
      src = readSource(
        {
          dataset: v.dataset,
          dir: v.dir,
          channels: v.channels,
          resize: v.resize,
          labelColumn: v.labelColumn,
          // A streamed image folder streams its paired modality too.
          stream: cfg.stream,
          cropPadding: cfg.cropPadding,
          hflip: cfg.hflip,
          trainLimit: cfg.trainLimit,
          testLimit: cfg.testLimit,
        },
        where,
      );
    }
    checkSplits(src);
    checkPairs(where, { dataset: cfg.dataset, ...main }, { dataset: v.dataset, ...src }, cfg);
    const t = src.train;
    if (cfg.cropPadding > 0 && (t.height !== main.train.height || t.width !== main.train.width))
      throw new RetortError(
        `${where}: the stored images (${src.label}) are ${t.height}x${t.width} and the data's (${main.label}) ${main.train.height}x${main.train.width}; cropPadding shifts both views of a sample by one offset, which needs one size (store or resize them to one size, or set data.cropPadding to 0)`,
      );
    const norm = normalisation(t, trainIdx, v.normalize, where);
    out[side] = { ...src, ...norm, source: v.dataset === 'code' ? src.label : `${v.dataset} ${src.dir}` };
  }
  return out;
}

/**
 * Refuses a stored view that does not pair with the data item by item in each split: the same
 * count (after trainLimit / testLimit), the same label per index and, for two image folders, the
 * same `<class>/<file>` (extension aside). The error names both folders, the split and the first
 * index that differs.
 */
function checkPairs(
  where: string,
  main: Source & { dataset: string },
  view: Source & { dataset: string },
  cfg: DataConfig,
): void {
  for (const s of ['train', 'test'] as const) {
    const a = main[s];
    const b = view[s];
    const limit = s === 'train' ? cfg.trainLimit : cfg.testLimit;
    const at = `${where}: the ${s} split of ${view.label} does not pair with ${main.label}`;
    if (a.count !== b.count)
      throw new RetortError(
        `${at}: ${b.count} items against ${a.count}${limit === undefined ? '' : ` (after ${s}Limit ${limit})`}; each sample needs one of each`,
      );
    const folders = main.dataset === 'image-folder' && view.dataset === 'image-folder';
    const na = folders ? imageFolderItems(main.dir, s, limit) : [];
    const nb = folders ? imageFolderItems(view.dir, s, limit) : [];
    const stem = (f: string) => f.slice(0, f.length - extname(f).length);
    const className = (d: ImageDataset, l: number) => (d.classNames?.[l] ? ` (${d.classNames[l]})` : '');
    for (let i = 0; i < a.count; i++) {
      if (folders && stem(na[i]!) !== stem(nb[i]!))
        throw new RetortError(`${at}: item ${i} is ${na[i]} in ${main.label} and ${nb[i]} in ${view.label}`);
      const la = a.labels[i]!;
      const lb = b.labels[i]!;
      if (la !== lb)
        throw new RetortError(
          `${at}: item ${i} has label ${la}${className(a, la)} in ${main.label} and ${lb}${className(b, lb)} in ${view.label}`,
        );
    }
  }
}

/** The views as the cache key holds them: a stored view by its source, normalisation and content. */
function viewsKey(views: Views, stored: { student?: StoredSource; teacher?: StoredSource }): unknown {
  // Keys of transform-only views stay as they were, so existing teacher caches remain valid.
  if (stored.student === undefined && stored.teacher === undefined) return views;
  const of = (side: 'student' | 'teacher') => {
    const v = views[side];
    const p = stored[side];
    if (v?.kind !== 'stored' || p === undefined) return v;
    return {
      kind: 'stored',
      dataset: v.dataset,
      dir: v.dataset === 'code' ? 'code' : resolve(p.dir),
      ...(v.dataset === 'image-folder' ? { channels: v.channels ?? 3, resize: v.resize ?? null } : {}),
      ...(v.dataset === 'csv' ? { label: v.labelColumn ?? 'label' } : {}),
      norm: { mean: p.mean, std: p.std },
      content: contentDigest(p.train),
    };
  };
  return { student: of('student'), teacher: of('teacher') };
}

/** One value per channel: `values` as given, or its single value repeated. */
function perChannel(key: string, values: readonly number[], channels: number): number[] {
  if (values.length === channels) return [...values];
  if (values.length === 1) return Array.from({ length: channels }, () => values[0]!);
  throw new RetortError(
    `${key}: ${values.length} values for images of ${channels} channel${channels === 1 ? ' (give 1)' : `s (give ${channels}, or 1 for all)`}`,
  );
}

/** SHA-256 of a split's decoded pixels and labels (hex, 32 chars; ~50 ms for Fashion-MNIST's 47 MB). */
export function contentDigest(d: ImageDataset): string {
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const labels = bytes(d.labels.subarray(0, d.count));
  if (isLazy(d.images))
    return createHash('sha256').update(d.images.digest()).update(labels).digest('hex').slice(0, 32);
  return createHash('sha256').update(bytes(d.images)).update(labels).digest('hex').slice(0, 32);
}
