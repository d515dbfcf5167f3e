/** Builds the loaders an experiment's `data` section describes. */

import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
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
import { loadImageFolder } from './image-folder.js';
import { BatchLoader, type Loader } from './loader.js';
import { isStream, type StreamDataset, StreamLoader } from './stream.js';
import { type Views, viewFormula, viewShape } from './views.js';

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
  mean: number[];
  std: number[];
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

/** Train and test splits of the configured dataset, checked. */
function readSplits(cfg: DataConfig, dir: string): { train: ImageDataset; test: ImageDataset } {
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
  let dir: string | undefined;
  let train: ImageDataset;
  let test: ImageDataset;
  if (cfg.dataset === 'code') {
    if (given === undefined)
      throw new RetortError(
        "data.dataset is 'code': pass the splits from your program (train(config, { data: { train, test } }))",
      );
    if (isStream(given.train) || isStream(given.test)) return streamData(cfg, given);
    dir = 'code';
    train = head(given.train, cfg.trainLimit);
    test = head(given.test, cfg.testLimit);
    if (train.numClasses !== test.numClasses)
      throw new RetortError(
        `${test.name}: ${test.numClasses} classes, the training split has ${train.numClasses}`,
      );
  } else {
    if (given !== undefined)
      throw new RetortError(`data: splits from code need data.dataset 'code', not '${cfg.dataset}'`);
    dir = cfg.dir ?? DEFAULT_DIRS[cfg.dataset];
    if (dir === undefined)
      throw new RetortError(
        `data.dir: the ${cfg.dataset} dataset has no default location; give the folder with its files`,
      );
    ({ train, test } = readSplits(cfg, dir));
  }
  validateDataset(train);
  validateDataset(test);
  checkClasses(train);
  // A model takes one input shape: a test split of 14x56 images beside 28x28 training images (the
  // same pixel count) would otherwise be read as if it fit.
  const dims = (d: ImageDataset) => `${d.height}x${d.width}x${d.channels}`;
  if (dims(train) !== dims(test))
    throw new RetortError(
      `${test.name}: items are ${dims(test)}, the training split's (${train.name}) are ${dims(train)}`,
    );
  const split = trainValSplit(train.count, cfg.valFraction, new Rng(seed ^ 0x5eed).permutation(train.count));
  let mean: number[];
  let std: number[];
  if (cfg.normalize) {
    mean = perChannel('data.normalize.mean', cfg.normalize.mean, train.channels);
    std = perChannel('data.normalize.std', cfg.normalize.std, train.channels);
  } else {
    // Normalisation statistics come from the training part only.
    const stats = channelStats(train, split.train);
    mean = stats.mean;
    // A constant feature or channel has std 0: leave it unscaled instead of dividing by zero.
    std = stats.std.map((s) => (s > 0 ? s : 1));
  }
  const base: [number, number, number] = [train.height, train.width, train.channels];
  const views = cfg.views;
  const shape = views?.student ? viewShape(views.student, base, 'data.views.student') : base;
  const teacherShape = views
    ? viewShape(views.teacher ?? { kind: 'identity' }, base, 'data.views.teacher')
    : undefined;
  const common = { mean, std, batchSize: cfg.batchSize, ...(views ? { views } : {}) };
  const trainLoader = new BatchLoader(train, {
    ...common,
    shuffle: true,
    indices: split.train,
    cropPadding: cfg.cropPadding,
    hflip: cfg.hflip,
    seed,
  });
  const evalOf = (d: ImageDataset, indices?: Uint32Array) =>
    new BatchLoader(d, {
      ...common,
      batchSize: 500,
      shuffle: false,
      keepLast: true,
      seed: 0,
      ...(indices ? { indices } : {}),
    });
  const testLoader = evalOf(test);
  return {
    train: trainLoader,
    val: cfg.valFraction > 0 ? evalOf(train, split.val) : testLoader,
    test: testLoader,
    trainPlain: evalOf(train, split.train),
    shape,
    teacherShape,
    ...(views?.student && viewFormula(views.student, base)
      ? { inputFormula: viewFormula(views.student, base) }
      : {}),
    numClasses: train.numClasses,
    mean,
    std,
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
      ...(views ? { views } : {}),
    }),
  };
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
