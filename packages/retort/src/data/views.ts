/**
 * Paired views of one sample, for cross-modal distillation: the teacher and the student see
 * different renderings of the same sample (the teacher the photograph, the student an edge map, a
 * low-resolution copy or a depth map), and the teacher's knowledge crosses over through the
 * pairing. A view is a fixed transform of the loader's normalised image, applied after augmentation
 * (so both views see the same crop and flip), or a second modality stored as its own files:
 *
 *   identity                  the image itself
 *   sobel                     per channel, the Sobel gradient magnitude sqrt(gx^2 + gy^2) of the
 *                             normalised image (3x3 kernels, zero padding): an edge map
 *   downsample { factor }     per channel, the mean of each factor x factor block: [H/f, W/f, C]
 *   stored { dataset, dir }   item i of another dataset (any file reader, or arrays from code;
 *                             channels, resize, labelColumn, normalize as the data section's), paired with
 *                             item i of the data: same count per split, same label per index, and
 *                             for two image folders the same <class>/<file> (extension aside).
 *                             Normalised with its own training-split statistics unless `normalize`
 *                             says; given the same crop offset and flip as the image (build.ts
 *                             reads and pairs it, the loader draws once per sample)
 *
 * `data.views: { student: ..., teacher: ... }` (identity where absent): the student's model is built
 * for, trained and evaluated on its view; the teacher runs on its view (and is built for its shape).
 */
import type { StoredView, View } from '../config/experiment.js';
import type { ImageDataset } from './dataset.js';

export type { StoredView, View, Views } from '../config/experiment.js';

/** A view computed from the loaded image. */
export type TransformView = Exclude<View, StoredView>;

/** A stored view with one split read: the loader takes item i of `data` as sample i's view. */
export interface PairedView {
  kind: 'paired';
  data: ImageDataset;
  /** Per-channel mean/std of this source's [0, 1] pixels. */
  mean: readonly number[];
  std: readonly number[];
  /** What it is, for messages and export sidecars, e.g. 'image-folder /data/depth'. */
  source: string;
}

/** What a loader applies: a transform, or a stored view read into a paired dataset. */
export type LoaderView = TransformView | PairedView;
export interface LoaderViews {
  student?: LoaderView | undefined;
  teacher?: LoaderView | undefined;
}

/** [H, W, C] of the view of an [H, W, C] image; throws when the view does not fit. */
export function viewShape(
  view: LoaderView,
  shape: readonly [number, number, number],
  where = 'view',
): [number, number, number] {
  const [h, w, c] = shape;
  if (view.kind === 'paired') return [view.data.height, view.data.width, view.data.channels];
  if (view.kind !== 'downsample') return [h, w, c];
  const f = view.factor;
  if (h % f !== 0 || w % f !== 0)
    throw new Error(
      `${where}: downsample by ${f} needs the image's height and width to be multiples of ${f}, got ${h}x${w}`,
    );
  return [h / f, w / f, c];
}

const SX = [-1, 0, 1, -2, 0, 2, -1, 0, 1];
const SY = [-1, -2, -1, 0, 0, 0, 1, 2, 1];

/** The view of `n` images [n, H, W, C] (NHWC, row-major) as a new array. */
export function applyView(
  view: TransformView,
  src: Float32Array,
  n: number,
  shape: readonly [number, number, number],
): Float32Array {
  const [h, w, c] = shape;
  if (view.kind === 'identity') return src;
  if (view.kind === 'downsample') {
    const f = view.factor;
    const [oh, ow] = [h / f, w / f];
    const out = new Float32Array(n * oh * ow * c);
    const inv = 1 / (f * f);
    for (let k = 0; k < n; k++)
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++)
          for (let ch = 0; ch < c; ch++) {
            let s = 0;
            for (let dy = 0; dy < f; dy++)
              for (let dx = 0; dx < f; dx++) s += src[((k * h + y * f + dy) * w + x * f + dx) * c + ch]!;
            out[((k * oh + y) * ow + x) * c + ch] = s * inv;
          }
    return out;
  }
  const out = new Float32Array(src.length);
  for (let k = 0; k < n; k++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) {
          let gx = 0;
          let gy = 0;
          for (let j = 0; j < 9; j++) {
            const yy = y + Math.floor(j / 3) - 1;
            const xx = x + (j % 3) - 1;
            if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
            const v = src[((k * h + yy) * w + xx) * c + ch]!;
            gx += SX[j]! * v;
            gy += SY[j]! * v;
          }
          out[((k * h + y) * w + x) * c + ch] = Math.sqrt(gx * gx + gy * gy);
        }
  return out;
}

/**
 * How an input value of the view comes from the stored 8-bit pixels p of an [H, W, C] image, for
 * the export sidecar (an exported student takes its view as input); undefined for identity. A
 * stored view is its own source's pixels, normalised with its own mean/std (the sidecar's, since
 * the data's mean/std are then the student's source's).
 */
export function viewFormula(view: LoaderView, shape: readonly [number, number, number]): string | undefined {
  if (view.kind === 'paired')
    return view.data.images instanceof Float32Array
      ? `x[n, y, x, c] = (v - mean[c]) / std[c] for the values v of the stored view (${view.source})`
      : `x[n, y, x, c] = (p / 255 - mean[c]) / std[c] for the 8-bit pixels p of the stored view (${view.source})`;
  const z = `z[y, x, c] = (p / 255 - mean[c]) / std[c] on the ${shape[0]}x${shape[1]} image`;
  if (view.kind === 'sobel')
    return `x[n, y, x, c] = sqrt(gx^2 + gy^2), the 3x3 Sobel gradients of z per channel with zero padding, ${z}`;
  if (view.kind === 'downsample')
    return `x[n, i, j, c] = the mean of z over the ${view.factor}x${view.factor} block at (${view.factor}i, ${view.factor}j), ${z}`;
  return undefined;
}
