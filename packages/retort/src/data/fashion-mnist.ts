/**
 * Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from the IDX files of Debian's dataset-fashion-mnist.
 * Nothing is downloaded: the loader reads files the user already has.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RetortError } from '../util/errors.js';
import { readIdx } from './idx.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** One split: images as uint8 [N, 28, 28] and labels as uint8 [N]. */
export interface ImageSplit {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
  numClasses: number;
}

function findFile(dir: string, base: string): string {
  for (const name of [`${base}.gz`, base]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new RetortError(
    `Fashion-MNIST file ${base}(.gz) not found in ${dir}. ` +
      (dir === FASHION_MNIST_DIR
        ? 'Install it with: apt-get install dataset-fashion-mnist, or point --data-dir at a folder with the IDX files.'
        : 'Point --data-dir at a folder with the four IDX files.'),
  );
}

/** Reads one split ('train' or 't10k') and checks images and labels agree. */
export function loadIdxSplit(dir: string, split: 'train' | 't10k', numClasses = 10): ImageSplit {
  const imgPath = findFile(dir, `${split}-images-idx3-ubyte`);
  const lblPath = findFile(dir, `${split}-labels-idx1-ubyte`);
  const img = readIdx(imgPath);
  const lbl = readIdx(lblPath);
  if (img.dims.length !== 3)
    throw new RetortError(`${imgPath}: expected rank-3 images [N, H, W], found [${img.dims.join(', ')}]`);
  if (lbl.dims.length !== 1)
    throw new RetortError(`${lblPath}: expected rank-1 labels [N], found [${lbl.dims.join(', ')}]`);
  const [n, h, w] = img.dims as [number, number, number];
  if (lbl.dims[0] !== n)
    throw new RetortError(`${lblPath}: ${lbl.dims[0]} labels but ${imgPath} has ${n} images`);
  for (let i = 0; i < n; i++) {
    if (lbl.data[i]! >= numClasses) {
      throw new RetortError(
        `${lblPath}: label ${lbl.data[i]} at index ${i} is out of range 0..${numClasses - 1}`,
      );
    }
  }
  return { images: img.data, labels: lbl.data, count: n, height: h, width: w, numClasses };
}
