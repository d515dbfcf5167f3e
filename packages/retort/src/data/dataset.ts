/** In-memory image classification data, as the readers produce it. */
export interface ImageDataset {
  /** Name for messages and cache keys, e.g. 'fashion-mnist/train'. */
  name: string;
  /** Pixels, [count, height, width, channels], uint8 (0..255) or already-scaled float32. */
  images: Uint8Array | Float32Array;
  /** Class index per image. */
  labels: Uint8Array | Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  classNames?: readonly string[];
}

/** Checks sizes agree and labels are in range; names the dataset in the error. */
export function validateDataset(d: ImageDataset): void {
  const per = d.height * d.width * d.channels;
  if (d.images.length !== d.count * per) {
    throw new Error(
      `${d.name}: ${d.images.length} pixel values for ${d.count} images of ${d.height}x${d.width}x${d.channels}`,
    );
  }
  if (d.labels.length !== d.count)
    throw new Error(`${d.name}: ${d.labels.length} labels for ${d.count} images`);
  for (let i = 0; i < d.count; i++) {
    const l = d.labels[i]!;
    if (l < 0 || l >= d.numClasses)
      throw new Error(`${d.name}: label ${l} at index ${i} is out of range 0..${d.numClasses - 1}`);
  }
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
  const scale = d.images instanceof Uint8Array ? 1 / 255 : 1;
  let n = 0;
  for (let k = 0; k < idx.length; k++) {
    const i = indices ? indices[k]! : k;
    const base = i * per * c;
    for (let p = 0; p < per; p++) {
      for (let ch = 0; ch < c; ch++) {
        const v = d.images[base + p * c + ch]! * scale;
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
    throw new Error(`validation fraction ${valFraction} is not in [0, 1)`);
  if (perm.length !== count)
    throw new Error(`split permutation has ${perm.length} entries for ${count} items`);
  const nVal = Math.round(count * valFraction);
  return { val: perm.slice(0, nVal).sort(), train: perm.slice(nVal).sort() };
}
