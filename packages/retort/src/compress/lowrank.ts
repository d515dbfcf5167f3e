/**
 * Low-rank factorization by truncated SVD (Denton et al., NeurIPS 2014; Jaderberg et al., BMVC 2014
 * for the conv case). A dense kernel W [in, out] becomes W ~ A B with A = W V_r [in, r] and
 * B = V_r^T [r, out] (V_r: the top-r right singular vectors), two dense layers of r (in + out)
 * weights instead of in * out; the dropped energy sqrt(sum_{i > r} s_i^2) is exactly the Frobenius
 * error. A conv kernel [k, k, Cin, Cout] is factorized through its [k * k * Cin, Cout] matrix into a
 * k x k conv with r filters followed by a 1 x 1 conv to Cout (the bias stays on the second).
 * The rank comes from an energy threshold (keep the smallest r with sum_{i <= r} s_i^2 >= e * total)
 * or a size target (the largest r whose factors hold at most a fraction of the original weights).
 */
import { symEigF64 } from 'retort-kd-native';

export interface Svd {
  /** Singular values, descending. */
  s: Float64Array;
  /** Right singular vectors as columns of a [cols, cols] row-major matrix. */
  v: Float64Array;
  rows: number;
  cols: number;
}

/** Singular values and right singular vectors of a [rows, cols] row-major matrix (via W^T W). */
export function svd(w: ArrayLike<number>, rows: number, cols: number): Svd {
  if (w.length !== rows * cols) throw new Error(`svd: ${w.length} values for a ${rows} x ${cols} matrix`);
  const g = new Float64Array(cols * cols);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < cols; i++) {
      const a = w[r * cols + i]!;
      if (a === 0) continue;
      for (let j = i; j < cols; j++) g[i * cols + j]! += a * w[r * cols + j]!;
    }
  for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) g[i * cols + j] = g[j * cols + i]!;
  const { values, vectors } = symEigF64(g, cols);
  return { s: values.map((x) => Math.sqrt(Math.max(0, x))), v: vectors, rows, cols };
}

export type RankRule = { energy: number } | { sizeFraction: number };

/** The rank the rule asks for (at least 1, at most min(rows, cols)). */
export function chooseRank(d: Svd, rule: RankRule): number {
  const maxRank = Math.min(d.rows, d.cols);
  if ('energy' in rule) {
    if (!(rule.energy > 0 && rule.energy <= 1))
      throw new Error(`lowrank: energy must be in (0, 1], got ${rule.energy}`);
    const total = d.s.reduce((a, x) => a + x * x, 0);
    let acc = 0;
    for (let r = 1; r <= maxRank; r++) {
      acc += d.s[r - 1]! ** 2;
      if (acc >= rule.energy * total * (1 - 1e-12)) return r;
    }
    return maxRank;
  }
  if (!(rule.sizeFraction > 0 && rule.sizeFraction <= 1))
    throw new Error(`lowrank: sizeFraction must be in (0, 1], got ${rule.sizeFraction}`);
  const r = Math.floor((rule.sizeFraction * d.rows * d.cols) / (d.rows + d.cols));
  return Math.max(1, Math.min(maxRank, r));
}

/** W ~ A B at rank r: A [rows, r] = W V_r, B [r, cols] = V_r^T; and the Frobenius error. */
export function factorize(
  w: ArrayLike<number>,
  d: Svd,
  r: number,
): { a: Float32Array; b: Float32Array; error: number } {
  const { rows, cols } = d;
  const a = new Float32Array(rows * r);
  for (let i = 0; i < rows; i++)
    for (let k = 0; k < r; k++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += w[i * cols + j]! * d.v[j * cols + k]!;
      a[i * r + k] = s;
    }
  const b = new Float32Array(r * cols);
  for (let k = 0; k < r; k++) for (let j = 0; j < cols; j++) b[k * cols + j] = d.v[j * cols + k]!;
  let dropped = 0;
  for (let k = r; k < d.s.length; k++) dropped += d.s[k]! ** 2;
  return { a, b, error: Math.sqrt(dropped) };
}
