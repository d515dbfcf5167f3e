import { RetortError } from '../util/errors.js';

/**
 * Pixels read on demand, one item at a time: a split too large to hold decoded in memory (an image
 * folder with `data.stream`) is decoded again for every batch that takes an item, as torchvision's
 * ImageFolder does.
 */
export interface LazyPixels {
  readonly kind: 'lazy';
  /** Item `i` as uint8 [height, width, channels] (a fresh array the caller may keep). */
  read(i: number): Uint8Array;
  /** Identifies the stored items (e.g. a hash of the files' bytes) for cache keys. */
  digest(): string;
}

/** Image classification data, as the readers produce it: random access by item index. */
export interface ImageDataset {
  /** Name for messages and cache keys, e.g. 'fashion-mnist/train'. */
  name: string;
  /**
   * Pixels, [count, height, width, channels], uint8 (0..255) or already-scaled float32 in memory,
   * or read from disk item by item.
   */
  images: Uint8Array | Float32Array | LazyPixels;
  /** Class index per image. */
  labels: Uint8Array | Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames?: readonly string[];
}

/** A split held decoded in memory (what every reader but a streamed image folder returns). */
export interface MemoryDataset extends ImageDataset {
  images: Uint8Array | Float32Array;
}

/**
 * An ImageDataset from arrays a program holds: `images` [count, H, W, C] row-major, uint8 pixels
 * (0..255) or float32 values already in [0, 1]; `labels` class indices. Checked like a file's.
 */
export function arrayDataset(d: {
  images: Uint8Array | Float32Array;
  labels: ArrayLike<number>;
  shape: readonly [number, number, number];
  numClasses?: number;
  classNames?: readonly string[];
  name?: string;
}): MemoryDataset {
  const labels = Int32Array.from(d.labels);
  let max = -1;
  for (const l of labels) if (l > max) max = l;
  const [height, width, channels] = d.shape;
  const out: MemoryDataset = {
    name: d.name ?? 'arrays',
    images: d.images,
    labels,
    count: labels.length,
    height,
    width,
    channels,
    numClasses: d.numClasses ?? d.classNames?.length ?? max + 1,
    ...(d.classNames ? { classNames: d.classNames } : {}),
  };
  validateDataset(out);
  return out;
}

/**
 * Checks a split before any training: not empty, sizes that agree, labels in range and finite
 * values (float data); each refusal names the dataset, says how many items are bad and which is
 * the first.
 */
export function validateDataset(d: ImageDataset): void {
  if (d.count === 0) throw new RetortError(`${d.name}: empty split (0 images)`);
  const per = d.height * d.width * d.channels;
  if (!isLazy(d.images) && d.images.length !== d.count * per) {
    throw new RetortError(
      `${d.name}: ${d.images.length} pixel values for ${d.count} images of ${d.height}x${d.width}x${d.channels}`,
    );
  }
  if (d.labels.length !== d.count)
    throw new RetortError(`${d.name}: ${d.labels.length} labels for ${d.count} images`);
  let badLabels = 0;
  let firstLabel = -1;
  for (let i = 0; i < d.count; i++) {
    const l = d.labels[i]!;
    if (!(l >= 0 && l < d.numClasses) && badLabels++ === 0) firstLabel = i;
  }
  if (badLabels > 0)
    throw new RetortError(
      `${d.name}: ${badLabels} label(s) outside 0..${d.numClasses - 1}; the first is ${d.labels[firstLabel]} at index ${firstLabel}`,
    );
  if (d.images instanceof Float32Array) {
    let bad = 0;
    let first = -1;
    for (let i = 0; i < d.images.length; i++) if (!Number.isFinite(d.images[i]!) && bad++ === 0) first = i;
    if (bad > 0)
      throw new RetortError(
        `${d.name}: ${bad} non-finite value(s); the first in item ${Math.floor(first / per)} (value ${d.images[first]})`,
      );
  }
}

/** How many items of each class; refuses a split with fewer than two classes present. */
export function checkClasses(d: ImageDataset): void {
  const seen = new Set<number>();
  for (let i = 0; i < d.count && seen.size < 2; i++) seen.add(d.labels[i]!);
  if (seen.size < 2) {
    const only = [...seen][0];
    const name = only !== undefined ? (d.classNames?.[only] ?? String(only)) : 'none';
    throw new RetortError(
      `${d.name}: every one of the ${d.count} items has class ${name}; a classifier needs at least two classes to train`,
    );
  }
}

export function isLazy(images: ImageDataset['images']): images is LazyPixels {
  return !ArrayBuffer.isView(images);
}

/** Item `i`'s [H, W, C] values: a view into memory, or read from disk. */
export function itemPixels(d: ImageDataset, i: number): Uint8Array | Float32Array {
  if (isLazy(d.images)) return d.images.read(i);
  const per = d.height * d.width * d.channels;
  return d.images.subarray(i * per, (i + 1) * per);
}

/** Per-channel mean and standard deviation of pixel values scaled to [0, 1] (uint8 / 255). */
export function channelStats(
  d: ImageDataset,
  indices?: ArrayLike<number>,
): { mean: number[]; std: number[] } {
  const c = d.channels;
  const per = d.height * d.width;
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const idx = indices ?? { length: d.count };
  const scale = d.images instanceof Float32Array ? 1 : 1 / 255;
  let n = 0;
  for (let k = 0; k < idx.length; k++) {
    const i = indices ? indices[k]! : k;
    const px = itemPixels(d, i);
    for (let p = 0; p < per; p++) {
      for (let ch = 0; ch < c; ch++) {
        const v = px[p * c + ch]! * scale;
        sum[ch] = sum[ch]! + v;
        sq[ch] = sq[ch]! + v * v;
      }
    }
    n += per;
  }
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(sq, (s, ch) => Math.sqrt(Math.max(s / n - mean[ch]! ** 2, 0)));
  return { mean, std };
}

/** Splits 0..count-1 into train and validation index sets with a seeded shuffle. */
export function trainValSplit(
  count: number,
  valFraction: number,
  perm: Uint32Array,
): { train: Uint32Array; val: Uint32Array } {
  if (!(valFraction >= 0 && valFraction < 1))
    throw new RetortError(`validation fraction ${valFraction} is not in [0, 1)`);
  if (perm.length !== count)
    throw new RetortError(`split permutation has ${perm.length} entries for ${count} items`);
  const nVal = Math.round(count * valFraction);
  return { val: perm.slice(0, nVal).sort(), train: perm.slice(nVal).sort() };
}
