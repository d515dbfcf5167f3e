/**
 * Calibration observers: they watch activations over calibration batches and propose a range
 * [lo, hi] for per-tensor quantization. As PyTorch's torch.ao.quantization observers:
 * - 'minmax': the running min and max (every value representable, outliers stretch the step);
 * - 'moving-average': min and max of each batch, averaged with momentum 0.01 (PyTorch's
 *   MovingAverageMinMaxObserver), less sensitive to one extreme batch;
 * - 'percentile': the p-th and (100 - p)-th percentiles of everything seen (clips outliers);
 * - 'mse': the clipping range [a * lo, a * hi] (a in (0, 1]) of the min-max range minimising the
 *   mean squared quantization error on the values seen (a grid search over a).
 * Percentile and MSE keep a bounded reservoir of values (a seeded sample) to stay in memory.
 */
import { chooseParams, type QDType, QRANGE, roundHalfEven } from './qparams.js';

export type ObserverKind = 'minmax' | 'moving-average' | 'percentile' | 'mse';

export interface ObserverOptions {
  kind: ObserverKind;
  /** moving-average: weight of the new batch. */
  momentum?: number;
  /** percentile: the upper percentile kept (the lower is 100 - p). */
  percentile?: number;
  /** percentile/mse: values kept for the estimate. */
  reservoir?: number;
  dtype?: QDType;
  symmetric?: boolean;
}

export class Observer {
  private lo = Number.POSITIVE_INFINITY;
  private hi = Number.NEGATIVE_INFINITY;
  private batches = 0;
  private seen = 0;
  private readonly sample: Float32Array;
  private filled = 0;
  private rng = 0x9e3779b9;

  constructor(readonly opts: ObserverOptions) {
    this.sample = new Float32Array(
      opts.kind === 'percentile' || opts.kind === 'mse' ? (opts.reservoir ?? 1 << 18) : 0,
    );
  }

  private random(): number {
    this.rng = (this.rng + 0x6d2b79f5) >>> 0;
    let t = this.rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  observe(x: ArrayLike<number>): void {
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      if (this.sample.length > 0) {
        // Reservoir sampling (Vitter's algorithm R).
        if (this.filled < this.sample.length) this.sample[this.filled++] = v;
        else {
          const j = Math.floor(this.random() * (this.seen + 1));
          if (j < this.sample.length) this.sample[j] = v;
        }
      }
      this.seen++;
    }
    if (this.opts.kind === 'moving-average' && this.batches > 0) {
      const m = this.opts.momentum ?? 0.01;
      this.lo += m * (lo - this.lo);
      this.hi += m * (hi - this.hi);
    } else if (this.opts.kind === 'moving-average') {
      this.lo = lo;
      this.hi = hi;
    } else {
      this.lo = Math.min(this.lo, lo);
      this.hi = Math.max(this.hi, hi);
    }
    this.batches++;
  }

  /** The proposed range. */
  range(): [number, number] {
    if (this.batches === 0) throw new Error('observer: no values observed');
    switch (this.opts.kind) {
      case 'minmax':
      case 'moving-average':
        return [this.lo, this.hi];
      case 'percentile': {
        const p = this.opts.percentile ?? 99.99;
        const s = this.sample.slice(0, this.filled).sort();
        const at = (q: number) =>
          s[Math.min(s.length - 1, Math.max(0, Math.round((q / 100) * (s.length - 1))))]!;
        return [at(100 - p), at(p)];
      }
      case 'mse': {
        const s = this.sample.subarray(0, this.filled);
        const dtype = this.opts.dtype ?? 'uint8';
        const sym = this.opts.symmetric ?? false;
        const [qmin, qmax] = QRANGE[dtype];
        let best: [number, number] = [this.lo, this.hi];
        let bestErr = Number.POSITIVE_INFINITY;
        for (let k = 1; k <= 100; k++) {
          const a = k / 100;
          const lo = this.lo * a;
          const hi = this.hi * a;
          const { scale, zeroPoint } = chooseParams(lo, hi, dtype, sym);
          let err = 0;
          for (const v of s) {
            const q = Math.min(qmax, Math.max(qmin, roundHalfEven(v / scale) + zeroPoint));
            err += ((q - zeroPoint) * scale - v) ** 2;
          }
          if (err < bestErr) {
            bestErr = err;
            best = [lo, hi];
          }
        }
        return best;
      }
    }
  }
}
