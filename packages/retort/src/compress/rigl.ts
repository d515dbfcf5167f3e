/**
 * The mechanics of RigL (Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All
 * Tickets Winners", ICML 2020): how many connections each layer keeps (uniform, or Erdős–Rényi-Kernel
 * as in the paper's appendix), the cosine-decayed fraction of them that moves at an update, which
 * steps update, and one drop/grow update of a layer. Pure functions on plain arrays; the stage that
 * trains with them is stages/rigl.ts.
 */
import type { Rng } from '../util/rng.js';

export type RiglDistribution = 'erk' | 'uniform';

/**
 * ERK densities of layers with kernel shapes `shapes` ([kh, kw, in, out] or [in, out]) at total
 * `sparsity`: density_l = eps * sum(shape_l) / prod(shape_l), eps chosen so that the kept weights
 * total (1 - sparsity) of all. A layer whose density would pass 1 is made dense and eps is solved
 * again over the rest, as the paper's appendix and its code (sparse_utils.get_sparsities_erdos_renyi)
 * do: small layers, the first conv and the classifier, are then dense.
 */
export function erkDensities(shapes: readonly (readonly number[])[], sparsity: number): number[] {
  checkSparsity(sparsity);
  const sizes = shapes.map(prod);
  const raw = shapes.map((s) => s.reduce((a, d) => a + d, 0) / prod(s));
  const total = sizes.reduce((a, n) => a + n, 0);
  const budget = total - Math.floor(sparsity * total);
  const dense = new Set<number>();
  for (;;) {
    const rest = sizes.flatMap((_, i) => (dense.has(i) ? [] : [i]));
    if (rest.length === 0) return sizes.map(() => 1);
    const left = budget - [...dense].reduce((a, i) => a + sizes[i]!, 0);
    const eps = left / rest.reduce((a, i) => a + raw[i]! * sizes[i]!, 0);
    const top = Math.max(...rest.map((i) => raw[i]!));
    if (eps * top <= 1) return sizes.map((_, i) => (dense.has(i) ? 1 : eps * raw[i]!));
    // Only the densest layers are fixed per pass: the others' densities rise with the new eps.
    for (const i of rest) if (raw[i] === top) dense.add(i);
  }
}

/**
 * Connections each layer keeps at total `sparsity`. 'uniform': every layer keeps n - floor(sparsity
 * * n), as per-layer magnitude pruning does (the paper keeps the first layer dense under uniform;
 * here every layer is at the target, so the sparsity asked for is the sparsity had). 'erk': the ERK
 * densities rounded by largest remainder, so the kept weights total n - floor(sparsity * n) over
 * all layers exactly.
 */
export function activeCounts(
  shapes: readonly (readonly number[])[],
  sparsity: number,
  distribution: RiglDistribution,
): number[] {
  checkSparsity(sparsity);
  const sizes = shapes.map(prod);
  if (distribution === 'uniform') return sizes.map((n) => n - Math.floor(sparsity * n));
  const want = erkDensities(shapes, sparsity).map((d, i) => Math.min(d * sizes[i]!, sizes[i]!));
  const counts = want.map(Math.floor);
  const total = sizes.reduce((a, n) => a + n, 0);
  let left = total - Math.floor(sparsity * total) - counts.reduce((a, c) => a + c, 0);
  const byRemainder = want
    .map((w, i) => ({ i, r: w - counts[i]! }))
    .filter(({ i }) => counts[i]! < sizes[i]!)
    .sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (left <= 0) break;
    counts[i]!++;
    left--;
  }
  return counts;
}

/** The fraction of a layer's active connections moved at step t: alpha/2 * (1 + cos(pi t / tEnd)). */
export function dropFraction(step: number, alpha: number, tEnd: number): number {
  return (alpha / 2) * (1 + Math.cos((Math.PI * step) / tEnd));
}

/**
 * Whether the connectivity is updated after `step` optimizer steps (1-based): every `updateEvery`
 * steps while step < tEnd. The first update comes after `updateEvery` steps, not on the random
 * initialisation the mask was drawn on.
 */
export function isUpdateStep(step: number, updateEvery: number, tEnd: number): boolean {
  return step > 0 && step % updateEvery === 0 && step < tEnd;
}

/** A 0/1 mask of `n` entries with `active` ones at uniformly random positions (RigL's sparse start). */
export function randomMask(n: number, active: number, rng: Rng): Float32Array {
  const m = new Float32Array(n);
  const order = rng.permutation(n);
  for (let i = 0; i < active; i++) m[order[i]!] = 1;
  return m;
}

/** A 0/1 mask keeping the `active` largest |w| (ties: the lower index is kept). */
export function magnitudeMask(w: Float32Array, active: number): Float32Array {
  const m = new Float32Array(w.length);
  const order = indicesBy(w.length, (i) => -Math.abs(w[i]!));
  for (let i = 0; i < active; i++) m[order[i]!] = 1;
  return m;
}

export interface DropGrow {
  /** The new 0/1 mask; as many ones as before. */
  mask: Float32Array;
  /** The weights under the new mask: newly grown connections at 0, dropped ones at 0. */
  weights: Float32Array;
  /** Connections dropped (k = floor(fraction * active)). */
  dropped: number;
  /** Of the grown connections, those that were inactive before: the connections that moved. */
  moved: number;
  /** The positions of the moved connections, ascending: where new weights (and optimizer state) start at 0. */
  grown: Uint32Array;
}

/**
 * One RigL update of a layer (the paper's Algorithm 1): drop the k = floor(fraction * active)
 * active connections of smallest |w|, then grow the k connections of largest |grad| among all
 * those not kept (the just-dropped ones included, as in the paper's ArgTopK over θ \ I_active).
 * A grown connection that was inactive starts at 0; one dropped and grown back keeps its value, as
 * the paper's code does by default (reinit_when_same false). `grad` is the dense gradient of the
 * loss w.r.t. the masked kernel; ties go to the lower index.
 */
export function dropGrow(
  w: Float32Array,
  mask: Float32Array,
  grad: Float32Array,
  fraction: number,
): DropGrow {
  if (mask.length !== w.length || grad.length !== w.length)
    throw new Error(
      `rigl: weights, mask and gradient differ in size (${w.length}, ${mask.length}, ${grad.length})`,
    );
  const active: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) active.push(i);
  const k = Math.floor(fraction * active.length);
  active.sort((a, b) => Math.abs(w[a]!) - Math.abs(w[b]!) || a - b);
  const next = mask.slice();
  for (let j = 0; j < k; j++) next[active[j]!] = 0;
  const candidates: number[] = [];
  for (let i = 0; i < next.length; i++) if (next[i] === 0) candidates.push(i);
  candidates.sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!) || a - b);
  const grown: number[] = [];
  for (let j = 0; j < k; j++) {
    const i = candidates[j]!;
    next[i] = 1;
    if (mask[i] === 0) grown.push(i);
  }
  const weights = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) weights[i] = next[i] === 1 && mask[i] === 1 ? w[i]! : 0;
  return {
    mask: next,
    weights,
    dropped: k,
    moved: grown.length,
    grown: Uint32Array.from(grown).sort(),
  };
}

function indicesBy(n: number, key: (i: number) => number): Uint32Array {
  const keys = Float64Array.from({ length: n }, (_, i) => key(i));
  return Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
}

function prod(s: readonly number[]): number {
  return s.reduce((a, d) => a * d, 1);
}

function checkSparsity(s: number): void {
  if (!(s >= 0 && s < 1)) throw new Error(`rigl: sparsity must be in [0, 1), got ${s}`);
}
