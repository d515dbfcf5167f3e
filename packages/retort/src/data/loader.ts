/**
 * Batches of normalised, optionally augmented images. Augmentations follow torchvision's CIFAR
 * recipe (RandomCrop(size, padding) with zero fill, then RandomHorizontalFlip, then Normalize), all
 * drawn from the loader's own Rng so a resumed run sees the same batches.
 */
import { RetortError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { type ImageDataset, itemPixels } from './dataset.js';
import { applyView, type LoaderView, type LoaderViews, viewShape } from './views.js';

export interface LoaderOptions {
  batchSize: number;
  shuffle: boolean;
  /** Keep the last, smaller batch (false drops it, like PyTorch's drop_last=True). */
  keepLast?: boolean;
  /** Per-channel mean/std of [0,1]-scaled pixels. */
  mean: readonly number[];
  std: readonly number[];
  /** Zero padding (pixels) for random crops; 0 = no crop. */
  cropPadding?: number;
  hflip?: boolean;
  /** Restrict to these dataset indices (e.g. a train/val split). */
  indices?: Uint32Array;
  seed: number;
  /**
   * Paired views (cross-modal): x is the student's view, teacherX the teacher's (views.ts). A
   * stored ('paired') view's dataset is indexed like this loader's: item i pairs with item i.
   */
  views?: LoaderViews | undefined;
}

export interface Batch {
  /** [n, H, W, C] normalised pixels. */
  x: Float32Array;
  /** [n] class indices. */
  y: Int32Array;
  /** [n] dataset indices of the samples (CRD-style methods need them). */
  index: Uint32Array;
  n: number;
  /** With paired views: the teacher's view of the same samples, [n, ...teacherShape]. */
  teacherX?: Float32Array;
  teacherShape?: [number, number, number];
}

/**
 * What the training loop reads: the batches of one epoch, from memory, disk or a program's stream
 * (data/stream.ts). Sizes are undefined for a stream until it has been read once.
 */
export interface Loader {
  readonly name: string;
  /** Items per batch (a stream: the largest seen). */
  readonly batchSize: number;
  /** Items per epoch. */
  readonly size: number | undefined;
  /** Batches per epoch. */
  readonly length: number | undefined;
  /** Random state of shuffling and augmentation (checkpointed), null when the loader has none. */
  readonly rng: Rng | null;
  epoch(): Iterable<Batch> | AsyncIterable<Batch>;
}

const IDENTITY: LoaderView = { kind: 'identity' };

/** Random-access batches of an ImageDataset. */
export class BatchLoader implements Loader {
  readonly rng: Rng;
  private readonly idx: Uint32Array;

  constructor(
    readonly data: ImageDataset,
    readonly opts: LoaderOptions,
  ) {
    if (opts.mean.length !== data.channels || opts.std.length !== data.channels) {
      throw new RetortError(
        `${data.name}: mean/std have ${opts.mean.length}/${opts.std.length} entries for ${data.channels} channels`,
      );
    }
    for (const side of ['student', 'teacher'] as const) {
      const v = opts.views?.[side];
      if (v?.kind !== 'paired') continue;
      const p = v.data;
      const where = `${data.name}: the ${side}'s stored view ${p.name}`;
      if (p.count !== data.count)
        throw new RetortError(`${where} has ${p.count} items for ${data.count} samples; pairs need one each`);
      if (v.mean.length !== p.channels || v.std.length !== p.channels)
        throw new RetortError(
          `${where}: mean/std have ${v.mean.length}/${v.std.length} entries for ${p.channels} channels`,
        );
      // One crop offset fits two images only at one size; a flip mirrors any width exactly.
      if ((opts.cropPadding ?? 0) > 0 && (p.height !== data.height || p.width !== data.width))
        throw new RetortError(
          `${where} is ${p.height}x${p.width}, the data ${data.height}x${data.width}: random crops need both views at one size`,
        );
    }
    this.rng = new Rng(opts.seed);
    this.idx = opts.indices ?? Uint32Array.from({ length: data.count }, (_, i) => i);
  }

  get name(): string {
    return this.data.name;
  }

  get size(): number {
    return this.idx.length;
  }

  /** Items per batch. */
  get batchSize(): number {
    return this.opts.batchSize;
  }

  /** Batches per epoch. */
  get length(): number {
    const full = Math.floor(this.idx.length / this.opts.batchSize);
    return this.opts.keepLast && this.idx.length % this.opts.batchSize !== 0 ? full + 1 : full;
  }

  /** One epoch of batches. Shuffling and augmentation draw from `this.rng`. */
  *epoch(): Generator<Batch> {
    const order = this.opts.shuffle ? permute(this.idx, this.rng) : this.idx;
    const bs = this.opts.batchSize;
    for (let b = 0; b < this.length; b++) {
      const from = b * bs;
      yield this.makeBatch(order.subarray(from, Math.min(from + bs, order.length)));
    }
  }

  /** Assembles the batch of the given dataset indices. */
  makeBatch(index: Uint32Array): Batch {
    const n = index.length;
    const y = new Int32Array(n);
    for (let k = 0; k < n; k++) y[k] = this.data.labels[index[k]!]!;
    // One draw per sample, shared by every image of it: paired views see the same crop and flip.
    const pad = this.opts.cropPadding ?? 0;
    const aug = new Int32Array(3 * n);
    for (let k = 0; k < n; k++) {
      aug[3 * k] = pad > 0 ? this.rng.int(2 * pad + 1) - pad : 0;
      aug[3 * k + 1] = pad > 0 ? this.rng.int(2 * pad + 1) - pad : 0;
      aug[3 * k + 2] = this.opts.hflip === true && this.rng.next() < 0.5 ? 1 : 0;
    }
    const views = this.opts.views;
    const image = (): Float32Array => render(this.data, this.opts.mean, this.opts.std, index, aug);
    if (views === undefined) return { x: image(), y, index: Uint32Array.from(index), n };
    const student = views.student ?? IDENTITY;
    const teacher = views.teacher ?? IDENTITY;
    const { height: H, width: W, channels: C } = this.data;
    const shape = [H, W, C] as const;
    // The loaded image is rendered once, only when a transform view needs it.
    let x: Float32Array | undefined;
    const viewOf = (v: LoaderView): Float32Array => {
      if (v.kind === 'paired') return render(v.data, v.mean, v.std, index, aug);
      x ??= image();
      return applyView(v, x, n, shape);
    };
    return {
      x: viewOf(student),
      y,
      index: Uint32Array.from(index),
      n,
      teacherX: viewOf(teacher),
      teacherShape: viewShape(teacher, shape),
    };
  }
}

/**
 * Items `index` of `d` as normalised [n, H, W, C] values, each shifted by its crop offset (dy, dx)
 * with zero fill (a zero pixel after Normalize) and mirrored by its flip: `aug` [n, 3].
 */
function render(
  d: ImageDataset,
  mean: readonly number[],
  std: readonly number[],
  index: Uint32Array,
  aug: Int32Array,
): Float32Array {
  const { height: H, width: W, channels: C } = d;
  const n = index.length;
  const x = new Float32Array(n * H * W * C);
  const scale = d.images instanceof Float32Array ? 1 : 1 / 255;
  const inv = std.map((s) => 1 / s);
  const fill = mean.map((m, c) => -m * inv[c]!);
  for (let k = 0; k < n; k++) {
    const dy = aug[3 * k]!;
    const dx = aug[3 * k + 1]!;
    const flip = aug[3 * k + 2] === 1;
    const px = itemPixels(d, index[k]!);
    const dst = k * H * W * C;
    for (let r = 0; r < H; r++) {
      const sr = r + dy;
      for (let col = 0; col < W; col++) {
        const sc = (flip ? W - 1 - col : col) + dx;
        const o = dst + (r * W + col) * C;
        if (sr < 0 || sr >= H || sc < 0 || sc >= W) {
          for (let c = 0; c < C; c++) x[o + c] = fill[c]!;
        } else {
          const s = (sr * W + sc) * C;
          for (let c = 0; c < C; c++) x[o + c] = (px[s + c]! * scale - mean[c]!) * inv[c]!;
        }
      }
    }
  }
  return x;
}

/** The first `max` batches of one epoch (all of them by default), from any loader. */
export async function takeBatches(loader: Loader, max = Number.POSITIVE_INFINITY): Promise<Batch[]> {
  const out: Batch[] = [];
  if (max <= 0) return out;
  for await (const b of loader.epoch()) {
    out.push(b);
    if (out.length >= max) break;
  }
  return out;
}

function permute(idx: Uint32Array, rng: Rng): Uint32Array {
  const p = rng.permutation(idx.length);
  const out = new Uint32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = idx[p[i]!]!;
  return out;
}
