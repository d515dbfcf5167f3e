/**
 * Test code (moved from src/compress/quantize/observers.ts, which keeps the moving-average observer
 * that activation QAT uses): calibration observers that watch a tensor over calibration batches and
 * propose the range [lo, hi] its per-tensor quantization should cover. As PyTorch's
 * torch.ao.quantization observers:
 * - 'minmax': the running min and max: every value representable, outliers stretch the step;
 * - 'percentile': the (100 - p)-th and p-th percentiles of the values seen: clips the tails;
 * - 'mse': the range minimising the mean squared quantization error (rounding inside, clipping
 *   outside) over the values seen, by search: symmetric ranges [-a M, a M] (M = max |x|) over a grid
 *   of a, refined around the best; asymmetric ranges start from [a lo, a hi] and then move each end
 *   alone (coordinate search), so an outlier on one side does not shrink the other.
 * Percentile and MSE keep a seeded reservoir sample of the values (Vitter's algorithm R), so memory
 * stays bounded; below the reservoir size they see every value.
 */
import { type QDType, QRANGE } from '../../src/compress/quantize/qparams.js';
import { chooseParams, roundHalfEven } from './qparams-ref.js';

export type ObserverKind = 'minmax' | 'percentile' | 'mse';

export interface ObserverOptions {
  kind: ObserverKind;
  /** percentile: the upper percentile kept, in (50, 100] (the lower is 100 - p); default 99.99. */
  percentile?: number;
  /** percentile/mse: values kept for the estimate (default 2^17). */
  reservoir?: number;
  /** mse: the quantization the range is for (default uint8, asymmetric). */
  dtype?: QDType;
  symmetric?: boolean;
}

const KINDS: readonly ObserverKind[] = ['minmax', 'percentile', 'mse'];

export class Observer {
  private lo = Number.POSITIVE_INFINITY;
  private hi = Number.NEGATIVE_INFINITY;
  private batches = 0;
  private seen = 0;
  private readonly sample: Float32Array;
  private filled = 0;
  private rng = 0x9e3779b9;

  constructor(readonly opts: ObserverOptions) {
    if (!KINDS.includes(opts.kind))
      throw new Error(`observer: unknown kind '${opts.kind}' (known: ${KINDS.join(', ')})`);
    const p = opts.percentile ?? 99.99;
    if (!(p > 50 && p <= 100)) throw new Error(`observer: percentile must be in (50, 100], got ${p}`);
    const r = opts.reservoir ?? 1 << 17;
    if (!(Number.isInteger(r) && r >= 1))
      throw new Error(`observer: reservoir must be a positive integer, got ${r}`);
    this.sample = new Float32Array(opts.kind === 'percentile' || opts.kind === 'mse' ? r : 0);
  }

  private random(): number {
    this.rng = (this.rng + 0x6d2b79f5) >>> 0;
    let t = this.rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Takes one batch of values. */
  observe(x: ArrayLike<number>): void {
    if (x.length === 0) return;
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (!Number.isFinite(v))
        throw new Error(`observer: non-finite value ${v} at index ${i} of batch ${this.batches}`);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (this.sample.length > 0) {
        if (this.filled < this.sample.length) this.sample[this.filled++] = v;
        else {
          const j = Math.floor(this.random() * (this.seen + 1));
          if (j < this.sample.length) this.sample[j] = v;
        }
      }
      this.seen++;
    }
    this.lo = Math.min(this.lo, lo);
    this.hi = Math.max(this.hi, hi);
    this.batches++;
  }

  /** The proposed range. */
  range(): [number, number] {
    if (this.batches === 0) throw new Error('observer: no values observed');
    switch (this.opts.kind) {
      case 'minmax':
        return [this.lo, this.hi];
      case 'percentile': {
        const p = this.opts.percentile ?? 99.99;
        const s = this.sample.slice(0, this.filled).sort();
        return [percentile(s, 100 - p), percentile(s, p)];
      }
      case 'mse':
        return mseRange(
          this.sample.subarray(0, this.filled),
          this.lo,
          this.hi,
          this.opts.dtype ?? 'uint8',
          this.opts.symmetric ?? false,
        );
    }
  }
}

/** The q-th percentile of sorted values, linearly interpolated (NumPy's default). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const pos = (q / 100) * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  const a = sorted[i]!;
  return f === 0 || i + 1 >= sorted.length ? a : a + f * (sorted[i + 1]! - a);
}

/** Sum of squared errors of quantizing `x` with the range [lo, hi]. */
export function quantError(
  x: ArrayLike<number>,
  lo: number,
  hi: number,
  dtype: QDType,
  symmetric: boolean,
): number {
  const [qmin, qmax] = QRANGE[dtype];
  const { scale, zeroPoint } = chooseParams(lo, hi, dtype, symmetric);
  let err = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const q = Math.min(qmax, Math.max(qmin, roundHalfEven(v / scale) + zeroPoint));
    err += ((q - zeroPoint) * scale - v) ** 2;
  }
  return err;
}

/**
 * The factor in (0, 1] with the least error for a one-parameter family of ranges: a grid of `grid`
 * steps, then `refine` steps around the best; never worse than `start` (the current factor).
 */
function search(errOf: (a: number) => number, start = 1, grid = 100, refine = 20): number {
  let best = start;
  let bestErr = errOf(start);
  for (let k = 1; k <= grid; k++) {
    const e = errOf(k / grid);
    if (e < bestErr) [best, bestErr] = [k / grid, e];
  }
  // A finer grid around the coarse optimum.
  const lo = Math.max(1 / grid / refine, best - 1 / grid);
  const hi = Math.min(1, best + 1 / grid);
  for (let k = 0; k <= refine; k++) {
    const a = lo + ((hi - lo) * k) / refine;
    const e = errOf(a);
    if (e < bestErr) [best, bestErr] = [a, e];
  }
  return best;
}

/** The clipping range of [lo, hi] with the least quantization error on `x` (see the file header). */
export function mseRange(
  x: ArrayLike<number>,
  lo: number,
  hi: number,
  dtype: QDType,
  symmetric: boolean,
): [number, number] {
  if (symmetric) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    if (m === 0) return [lo, hi];
    const a = search((f) => quantError(x, -f * m, f * m, dtype, true));
    return [-a * m, a * m];
  }
  const l0 = Math.min(lo, 0);
  const h0 = Math.max(hi, 0);
  if (l0 === h0) return [lo, hi];
  const a = search((f) => quantError(x, f * l0, f * h0, dtype, false));
  let l = a * l0;
  let h = a * h0;
  for (let round = 0; round < 2; round++) {
    if (l0 < 0) l = search((f) => quantError(x, f * l0, h, dtype, false), l / l0) * l0;
    if (h0 > 0) h = search((f) => quantError(x, l, f * h0, dtype, false), h / h0) * h0;
  }
  return [l, h];
}
