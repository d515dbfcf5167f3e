/**
 * CIFAR-10 and CIFAR-100 "binary version" batches (Krizhevsky 2009; the files of
 * cifar-10-batches-bin / cifar-100-binary). Records are fixed-size: CIFAR-10 has 1 label byte then
 * 3072 pixel bytes, CIFAR-100 a coarse and a fine label byte then 3072; pixels are planar (1024 R,
 * 1024 G, 1024 B, rows of 32), converted here to the interleaved HWC layout the loaders use.
 * CIFAR-100 uses the fine labels (100 classes), as RepDistiller.
 */

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import type { MemoryDataset } from './dataset.js';

export type CifarVariant = 'cifar10' | 'cifar100';

const SIDE = 32;
const PIXELS = SIDE * SIDE * 3;

const FILES: Record<CifarVariant, Record<'train' | 'test', string[]>> = {
  cifar10: {
    train: [
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_3.bin',
      'data_batch_4.bin',
      'data_batch_5.bin',
    ],
    test: ['test_batch.bin'],
  },
  cifar100: { train: ['train.bin'], test: ['test.bin'] },
};

const FOLDER: Record<CifarVariant, string> = {
  cifar10: 'cifar-10-batches-bin',
  cifar100: 'cifar-100-binary',
};

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

/** Parses one binary batch file's bytes into HWC pixels and labels. */
export function parseCifarBatch(
  buf: Uint8Array,
  variant: CifarVariant,
  name: string,
): { images: Uint8Array; labels: Uint8Array; count: number } {
  const labelBytes = variant === 'cifar10' ? 1 : 2;
  const record = labelBytes + PIXELS;
  const numClasses = variant === 'cifar10' ? 10 : 100;
  if (buf.length === 0)
    throw new RetortError(`${name}: empty file (expected ${variant} records of ${record} bytes)`);
  if (buf.length % record !== 0)
    throw new RetortError(
      `${name}: ${buf.length} bytes is not a whole number of ${variant} records of ${record} bytes (truncated or not a ${variant} binary batch)`,
    );
  const count = buf.length / record;
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  const plane = SIDE * SIDE;
  for (let i = 0; i < count; i++) {
    const base = i * record;
    const label = buf[base + labelBytes - 1]!; // CIFAR-100: the fine label is the second byte
    if (label >= numClasses)
      throw new RetortError(`${name}: record ${i} has label ${label}, out of range 0..${numClasses - 1}`);
    labels[i] = label;
    const src = base + labelBytes;
    const dst = i * PIXELS;
    for (let p = 0; p < plane; p++) {
      images[dst + p * 3] = buf[src + p]!;
      images[dst + p * 3 + 1] = buf[src + plane + p]!;
      images[dst + p * 3 + 2] = buf[src + 2 * plane + p]!;
    }
  }
  return { images, labels, count };
}

/** Reads a split of CIFAR-10/100 from `dir` (the extracted binary folder). */
export function loadCifar(dir: string, variant: CifarVariant, split: 'train' | 'test'): MemoryDataset {
  const parts = FILES[variant][split].map((f) => {
    const path = join(dir, f);
    if (!existsSync(path)) {
      // The Python pickles ('cifar-10-batches-py') have the same names without '.bin'.
      const pickle = join(dir, f.replace(/\.bin$/, ''));
      const python =
        existsSync(pickle) && statSync(pickle).isFile()
          ? ` (${dir} looks like the Python version; the reader needs the binary one)`
          : '';
      throw new RetortError(
        `${variant}: ${path} not found; point data.dir at the extracted '${FOLDER[variant]}' folder (the binary version)${python}`,
      );
    }
    // One batch file is 30 MB (CIFAR-10) or 150 MB (CIFAR-100 train).
    const buf = readFileBounded(path, 512 * 1024 ** 2, 'CIFAR batch');
    return parseCifarBatch(buf, variant, path);
  });
  const count = parts.reduce((a, p) => a + p.count, 0);
  const images = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * PIXELS);
    labels.set(p.labels, at);
    at += p.count;
  }
  return {
    name: `${variant}/${split}`,
    images,
    labels,
    count,
    height: SIDE,
    width: SIDE,
    channels: 3,
    numClasses: variant === 'cifar10' ? 10 : 100,
    ...(variant === 'cifar10' ? { classNames: CIFAR10_CLASSES } : {}),
  };
}
