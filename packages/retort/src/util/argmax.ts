/** Index of the largest of row `i` of a row-major [*, k] array (the first on ties): a top-1 class. */
export function rowArgmax(v: ArrayLike<number>, i: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (v[i * k + j]! > v[i * k + best]!) best = j;
  return best;
}
