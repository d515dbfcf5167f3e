/** Classification metrics on logits held in JS memory. */

/**
 * Counts samples whose label is among the top-k logits, for each k in `ks`. logits: [n, K] row-major.
 * Ties count against the sample (a label tied with others is ranked after them), as torch.topk
 * would pick the lower index first only by chance.
 */
export function topkCorrect(
  logits: Float32Array,
  labels: ArrayLike<number>,
  numClasses: number,
  ks: readonly number[],
): number[] {
  const n = labels.length;
  const hits = ks.map(() => 0);
  for (let i = 0; i < n; i++) {
    const row = i * numClasses;
    const target = logits[row + labels[i]!]!;
    if (Number.isNaN(target)) continue;
    let above = 0; // classes ranked strictly before the label
    for (let c = 0; c < numClasses; c++) {
      const v = logits[row + c]!;
      if (c !== labels[i] && (v > target || (v === target && c < labels[i]!) || Number.isNaN(v))) above++;
    }
    for (let j = 0; j < ks.length; j++) if (above < ks[j]!) hits[j]!++;
  }
  return hits;
}

/**
 * The top-1 class of each row of [n, numClasses] logits, ties to the lower index (the order
 * topkCorrect ranks them in); a NaN logit counts as the largest, as there.
 */
export function argmaxRows(logits: Float32Array, numClasses: number): Int32Array {
  const n = logits.length / numClasses;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = i * numClasses;
    let best = 0;
    for (let c = 1; c < numClasses; c++) {
      const v = logits[row + c]!;
      const b = logits[row + best]!;
      if (Number.isNaN(b)) break;
      if (v > b || Number.isNaN(v)) best = c;
    }
    out[i] = best;
  }
  return out;
}

/** counts[t][p]: test items of true class t predicted as p. */
export function confusionMatrix(
  labels: ArrayLike<number>,
  predicted: ArrayLike<number>,
  numClasses: number,
): number[][] {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predicted[i]!]!++;
  return m;
}

/** Running mean of a scalar. */
export class Mean {
  private sum = 0;
  private n = 0;
  add(value: number, weight = 1): void {
    this.sum += value * weight;
    this.n += weight;
  }
  get value(): number {
    return this.n === 0 ? Number.NaN : this.sum / this.n;
  }
}
