/** Shared by the scheme tests: bit-for-bit checkpoint comparison and a training split that must not be read. */
import assert from 'node:assert/strict';
import { arrayDataset } from '../../../src/data/dataset.js';
import { FASHION_MNIST_DIR, loadIdxSplit } from '../../../src/data/fashion-mnist.js';
import { batchStream } from '../../../src/data/stream.js';
import { loadCheckpoint } from '../../../src/train/checkpoint.js';

/** The two checkpoint files hold the same tensors, value for value, in the same order. */
export function assertSameCheckpoint(a: string, b: string): void {
  const x = loadCheckpoint(a);
  const y = loadCheckpoint(b);
  assert.equal(y.header.tensors.length, x.header.tensors.length);
  for (const [i, t] of x.header.tensors.entries())
    assert.deepEqual(y.values.get(y.header.tensors[i]!.name)!.data, x.values.get(t.name)!.data, t.name);
}

/**
 * Splits for `dataset: code` whose training stream throws when read (a run that trains on it
 * provably saw no real training image) and a real test split of `testCount` images.
 */
export function splitsWithoutTraining(testCount = 128) {
  const real = loadIdxSplit(FASHION_MNIST_DIR, 't10k');
  const test = arrayDataset({
    images: real.images.subarray(0, testCount * 784),
    labels: real.labels.subarray(0, testCount),
    shape: [28, 28, 1],
  });
  return () => ({
    train: batchStream({
      batches: () => {
        throw new Error('a real training image was read');
      },
      shape: [28, 28, 1],
      numClasses: 10,
      mean: [0.286],
      std: [0.353],
    }),
    test,
  });
}
