/**
 * The calibration observer of activation QAT (act-qat.ts): it watches a tensor over training batches
 * and proposes the range [lo, hi] its per-tensor quantization should cover, as PyTorch's
 * MovingAverageMinMaxObserver does: the first batch's min and max, then each batch's averaged in
 * with momentum m (0.01 by default), lo <- lo + m (batch min - lo), so one batch sways it little.
 */
export class MovingAverageObserver {
  private lo = Number.POSITIVE_INFINITY;
  private hi = Number.NEGATIVE_INFINITY;
  private batches = 0;

  /** `momentum`: weight of each new batch's min and max, in (0, 1]. */
  constructor(readonly momentum = 0.01) {
    if (!(momentum > 0 && momentum <= 1))
      throw new Error(`observer: momentum must be in (0, 1], got ${momentum}`);
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
    }
    if (this.batches > 0) {
      this.lo += this.momentum * (lo - this.lo);
      this.hi += this.momentum * (hi - this.hi);
    } else {
      this.lo = lo;
      this.hi = hi;
    }
    this.batches++;
  }

  /** The proposed range. */
  range(): [number, number] {
    if (this.batches === 0) throw new Error('observer: no values observed');
    return [this.lo, this.hi];
  }
}
