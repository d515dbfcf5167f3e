/** Builds the loaders an experiment's `data` section describes. */

import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { RetortError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { loadCifar } from './cifar.js';
import { loadCsv } from './csv.js';
import { channelStats, checkClasses, type ImageDataset, trainValSplit, validateDataset } from './dataset.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadIdxSplit } from './fashion-mnist.js';
import { loadImageFolder } from './image-folder.js';
import { BatchLoader } from './loader.js';

export interface DataConfig {
  dataset: 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'image-folder' | 'csv' | 'code';
  dir?: string | undefined;
  channels?: 1 | 3 | undefined;
  labelColumn?: string | undefined;
  resize?: readonly [number, number] | undefined;
  batchSize: number;
  valFraction: number;
  cropPadding: number;
  hflip: boolean;
  trainLimit?: number | undefined;
  testLimit?: number | undefined;
}

export interface ExperimentData {
  train: BatchLoader;
  /** Held-out part of the training set, or the test split when valFraction is 0. */
  val: BatchLoader;
  test: BatchLoader;
  /** The same training images without augmentation or shuffling (teacher caches use it). */
  trainPlain: BatchLoader;
  shape: [number, number, number];
  numClasses: number;
  mean: number[];
  std: number[];
  /** Identifies the data and preprocessing (cache keys). */
  key: string;
  /** Class names in label order, when the dataset has them. */
  classNames?: readonly string[] | undefined;
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
    images: d.images.subarray(0, limit * per),
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
      const train = loadImageFolder(dir, 'train', cfg.channels ?? 3, cfg.trainLimit, cfg.resize);
      const test = loadImageFolder(dir, 'test', cfg.channels ?? 3, cfg.testLimit, cfg.resize);
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

/** Train and test splits a program passes in (`dataset: code`); see arrayDataset. */
export interface DataSplits {
  train: ImageDataset;
  test: ImageDataset;
}

/**
 * The loaders of `cfg`; with `dataset: code` the splits come from `given` (data made by the user's
 * program), with every other reader from files.
 */
export function buildData(cfg: DataConfig, seed: number, given?: DataSplits): ExperimentData {
  let dir: string | undefined;
  let train: ImageDataset;
  let test: ImageDataset;
  if (cfg.dataset === 'code') {
    if (given === undefined)
      throw new RetortError(
        "data.dataset is 'code': pass the splits from your program (train(config, { data: { train, test } }))",
      );
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
  // Normalisation statistics come from the training part only.
  const stats = channelStats(train, split.train);
  const mean = stats.mean;
  // A constant feature or channel has std 0: leave it unscaled instead of dividing by zero.
  const std = stats.std.map((s) => (s > 0 ? s : 1));
  const common = { mean, std, batchSize: cfg.batchSize };
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
    shape: [train.height, train.width, train.channels],
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
    }),
  };
}

/** SHA-256 of a split's decoded pixels and labels (hex, 32 chars; ~50 ms for Fashion-MNIST's 47 MB). */
export function contentDigest(d: ImageDataset): string {
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return createHash('sha256').update(bytes(d.images)).update(bytes(d.labels)).digest('hex').slice(0, 32);
}
