/**
 * Batches of normalised, optionally augmented images. Augmentations follow torchvision's CIFAR
 * recipe (RandomCrop(size, padding) with zero fill, then RandomHorizontalFlip, then Normalize), all
 * drawn from the loader's own Rng so a resumed run sees the same batches.
 */
import { RetortError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { type ImageDataset, itemPixels } from './dataset.js';
import { applyView, type View, type Views, viewShape } from './views.js';

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
  /** Paired views (cross-modal): x is the student's view, teacherX the teacher's (views.ts). */
  views?: Views | undefined;
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

const IDENTITY: View = { kind: 'identity' };

/** Random-access batches of an ImageDataset. */
export class BatchLoader implements Loader {
  readonly rng: Rng;
  private readonly idx: Uint32Array;
  private readonly scale: number;

  constructor(
    readonly data: ImageDataset,
    readonly opts: LoaderOptions,
  ) {
    if (opts.mean.length !== data.channels || opts.std.length !== data.channels) {
      throw new RetortError(
        `${data.name}: mean/std have ${opts.mean.length}/${opts.std.length} entries for ${data.channels} channels`,
      );
    }
    this.rng = new Rng(opts.seed);
    this.idx = opts.indices ?? Uint32Array.from({ length: data.count }, (_, i) => i);
    this.scale = data.images instanceof Float32Array ? 1 : 1 / 255;
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
    const { height: H, width: W, channels: C } = this.data;
    const n = index.length;
    const x = new Float32Array(n * H * W * C);
    const y = new Int32Array(n);
    const pad = this.opts.cropPadding ?? 0;
    const inv = this.opts.std.map((s) => 1 / s);
    const fill = this.opts.mean.map((m, c) => -m * inv[c]!); // a zero pixel after Normalize
    for (let k = 0; k < n; k++) {
      const i = index[k]!;
      y[k] = this.data.labels[i]!;
      const dy = pad > 0 ? this.rng.int(2 * pad + 1) - pad : 0;
      const dx = pad > 0 ? this.rng.int(2 * pad + 1) - pad : 0;
      const flip = this.opts.hflip === true && this.rng.next() < 0.5;
      const px = itemPixels(this.data, i);
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
            for (let c = 0; c < C; c++) x[o + c] = (px[s + c]! * this.scale - this.opts.mean[c]!) * inv[c]!;
          }
        }
      }
    }
    const views = this.opts.views;
    if (views === undefined) return { x, y, index: Uint32Array.from(index), n };
    const shape = [H, W, C] as const;
    return {
      x: applyView(views.student ?? IDENTITY, x, n, shape),
      y,
      index: Uint32Array.from(index),
      n,
      teacherX: applyView(views.teacher ?? IDENTITY, x, n, shape),
      teacherShape: viewShape(views.teacher ?? IDENTITY, shape),
    };
  }
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
