/** Builds the loaders an experiment's `data` section describes. */
import { Rng } from '../util/rng.js';
import { channelStats, type ImageDataset, trainValSplit } from './dataset.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadIdxSplit } from './fashion-mnist.js';
import { BatchLoader } from './loader.js';

export interface DataConfig {
  dataset: 'fashion-mnist' | 'mnist';
  dir?: string | undefined;
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
}

const DEFAULT_DIRS: Record<DataConfig['dataset'], string> = {
  'fashion-mnist': FASHION_MNIST_DIR,
  mnist: '/usr/share/datasets/mnist',
};

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

export function buildData(cfg: DataConfig, seed: number): ExperimentData {
  const dir = cfg.dir ?? DEFAULT_DIRS[cfg.dataset];
  const train = idxDataset(dir, 'train', cfg.dataset, cfg.trainLimit);
  const test = idxDataset(dir, 't10k', cfg.dataset, cfg.testLimit);
  const split = trainValSplit(train.count, cfg.valFraction, new Rng(seed ^ 0x5eed).permutation(train.count));
  // Normalisation statistics come from the training part only.
  const { mean, std } = channelStats(train, split.train);
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
    key: JSON.stringify({
      d: cfg.dataset,
      dir,
      n: train.count,
      val: cfg.valFraction,
      seed: cfg.valFraction > 0 ? seed : 0,
    }),
  };
}
