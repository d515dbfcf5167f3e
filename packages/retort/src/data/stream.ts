/**
 * Batches a program streams in, as PyTorch's IterableDataset: Retort reads each epoch's batches in
 * the order the program yields them, with no random access. What needs random access is therefore
 * the program's own business (shuffling, augmentation) or refused with a message (a validation split
 * carved from the training data, teacher output caches, methods with per-item memory such as CRD).
 */
import * as tf from '@tensorflow/tfjs-core';
import { RetortError } from '../util/errors.js';
import type { Batch, Loader } from './loader.js';

/**
 * One batch from a program: `x` [n, H, W, C] (row-major) and `y` n class indices. Values are copied
 * when the batch is read; tensors stay the program's to dispose (after the `yield` resumes).
 */
export interface StreamBatch {
  /** uint8 pixels (scaled by 1/255, then normalised) or float32 values (normalised only). */
  x: Float32Array | Uint8Array | tf.Tensor;
  y: ArrayLike<number> | tf.Tensor;
}

type Source = AsyncIterable<StreamBatch> | Iterable<StreamBatch>;

export interface BatchStreamSpec {
  /**
   * The batches of one epoch. A function is called once per epoch; an iterable is iterated again
   * each epoch (a generator *object* can only be iterated once: pass the generator function).
   */
  batches: Source | (() => Source);
  /** [H, W, C] of one item. */
  shape: readonly [number, number, number];
  numClasses: number;
  classNames?: readonly string[];
  /** Per-channel mean and std applied to the values (after /255 for uint8); default none. */
  mean?: readonly number[];
  std?: readonly number[];
  /** For messages, e.g. 'shards/train'. */
  name?: string;
}

/** A split streamed from a program (see batchStream). */
export interface StreamDataset extends Required<Omit<BatchStreamSpec, 'classNames' | 'batches'>> {
  readonly kind: 'stream';
  batches: BatchStreamSpec['batches'];
  classNames?: readonly string[] | undefined;
  /** Whether mean/std were given (a test stream without them takes the training stream's). */
  normGiven: boolean;
}

/** Describes a split whose batches come from the program (train(config, { data: { train, test } })). */
export function batchStream(spec: BatchStreamSpec): StreamDataset {
  const name = spec.name ?? 'stream';
  const [h, w, c] = spec.shape;
  if (![h, w, c].every((v) => Number.isInteger(v) && v > 0))
    throw new RetortError(`${name}: shape [${spec.shape.join(', ')}] is not [H, W, C] of positive integers`);
  if (!(Number.isInteger(spec.numClasses) && spec.numClasses >= 2))
    throw new RetortError(`${name}: numClasses ${spec.numClasses} (a classifier needs at least 2)`);
  if (spec.classNames && spec.classNames.length !== spec.numClasses)
    throw new RetortError(`${name}: ${spec.classNames.length} class names for ${spec.numClasses} classes`);
  const mean = spec.mean ?? new Array<number>(c).fill(0);
  const std = spec.std ?? new Array<number>(c).fill(1);
  if (mean.length !== c || std.length !== c)
    throw new RetortError(`${name}: mean/std have ${mean.length}/${std.length} entries for ${c} channels`);
  if (std.some((s) => !(s > 0))) throw new RetortError(`${name}: std [${std.join(', ')}] must be positive`);
  const src = spec.batches;
  const iterable =
    typeof src === 'function' ||
    (src !== null &&
      typeof src === 'object' &&
      (Symbol.asyncIterator in src || Symbol.iterator in (src as object)));
  if (!iterable)
    throw new RetortError(
      `${name}: batches must be an (async) iterable of {x, y} or a function returning one`,
    );
  return {
    kind: 'stream',
    name,
    batches: src,
    shape: [h, w, c],
    numClasses: spec.numClasses,
    classNames: spec.classNames,
    mean: [...mean],
    std: [...std],
    normGiven: spec.mean !== undefined || spec.std !== undefined,
  };
}

export function isStream(d: unknown): d is StreamDataset {
  return typeof d === 'object' && d !== null && (d as { kind?: unknown }).kind === 'stream';
}

/** Reads a StreamDataset epoch by epoch as Retort batches; each bad batch is one named error. */
export class StreamLoader implements Loader {
  readonly rng = null;
  private passes = 0;
  private lastBatches: number | undefined;
  private lastItems: number | undefined;
  private largest = 0;

  constructor(readonly data: StreamDataset) {}

  get name(): string {
    return this.data.name;
  }
  /** Batches and items per epoch: unknown until one pass has been read. */
  get length(): number | undefined {
    return this.lastBatches;
  }
  get size(): number | undefined {
    return this.lastItems;
  }
  get batchSize(): number {
    return this.largest;
  }

  async *epoch(): AsyncGenerator<Batch> {
    const pass = ++this.passes;
    const src = typeof this.data.batches === 'function' ? this.data.batches() : this.data.batches;
    if (typeof src !== 'object' || src === null || !(Symbol.asyncIterator in src || Symbol.iterator in src))
      throw new RetortError(
        `${this.name}: batches() returned ${describe(src)}, not an iterable of {x, y} (an async function returns a Promise: use an async generator function)`,
      );
    const [H, W, C] = this.data.shape;
    const per = H * W * C;
    const { mean, std, numClasses } = this.data;
    let batches = 0;
    let items = 0;
    for await (const b of src as AsyncIterable<StreamBatch>) {
      const where = `${this.name}: batch ${batches + 1} of pass ${pass}`;
      if (typeof b !== 'object' || b === null || !('x' in b) || !('y' in b))
        throw new RetortError(`${where} is not an object with x and y`);
      const yRaw = b.y instanceof tf.Tensor ? b.y.dataSync() : b.y;
      const n = yRaw.length;
      if (n === 0) throw new RetortError(`${where} has no items`);
      const xRaw = b.x instanceof tf.Tensor ? b.x.dataSync() : b.x;
      if (!(xRaw instanceof Float32Array || xRaw instanceof Uint8Array))
        throw new RetortError(
          `${where}: x is ${describe(xRaw)}; expected a Float32Array, Uint8Array or tensor`,
        );
      if (xRaw.length !== n * per)
        throw new RetortError(
          `${where}: x has ${xRaw.length} values for ${n} labels of [${H}, ${W}, ${C}] (${n * per} expected)`,
        );
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const l = yRaw[i]!;
        if (!(Number.isInteger(l) && l >= 0 && l < numClasses))
          throw new RetortError(
            `${where}: label ${l} at item ${i} is not a class index in 0..${numClasses - 1}`,
          );
        y[i] = l;
      }
      const scale = xRaw instanceof Uint8Array ? 1 / 255 : 1;
      const x = new Float32Array(n * per);
      for (let i = 0; i < x.length; i++) {
        const c = i % C;
        const v = (xRaw[i]! * scale - mean[c]!) / std[c]!;
        if (!Number.isFinite(v))
          throw new RetortError(`${where}: non-finite value ${xRaw[i]} in item ${Math.floor(i / per)}`);
        x[i] = v;
      }
      // Item numbers within the pass: stable only if the program yields items in a fixed order.
      const index = Uint32Array.from({ length: n }, (_, i) => items + i);
      batches++;
      items += n;
      if (n > this.largest) this.largest = n;
      yield { x, y, index, n };
    }
    if (batches === 0)
      throw new RetortError(
        pass === 1
          ? `${this.name}: the stream yielded no batches`
          : `${this.name}: pass ${pass} yielded no batches (pass 1 had ${this.lastBatches}); a generator object runs once: give batches as a function that returns a new iterable each epoch`,
      );
    this.lastBatches = batches;
    this.lastItems = items;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'an object';
}
