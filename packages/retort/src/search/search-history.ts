/**
 * What a search remembers: one entry per evaluation (candidate, measured cost, proxy accuracy or the
 * error that replaced it, rung), the constraints a candidate must meet, and the two questions asked
 * of a finished search: its best feasible candidate and its Pareto front of accuracy against cost
 * (the trade-off view of multi-objective NAS, e.g. "MnasNet: Platform-Aware Neural Architecture
 * Search for Mobile", Tan et al., CVPR 2019). Plain JSON throughout so a history can be saved.
 */
import type { Candidate } from './space-config.js';

/** Cost of one candidate, measured elsewhere (latency table, parameter and MAC counters). */
export interface Cost {
  /** Latency of one forward pass in milliseconds. */
  readonly latencyMs: number;
  /** Trainable and non-trainable parameters. */
  readonly params: number;
  /** Multiply-accumulates of one forward pass of one image. */
  readonly macs: number;
}

/** Upper bounds a candidate must meet; an absent bound does not constrain. */
export interface Constraints {
  readonly maxLatencyMs?: number;
  readonly maxParams?: number;
  readonly maxMacs?: number;
}

/** The constraint names, each with the cost field it bounds. */
export const CONSTRAINT_FIELDS = {
  maxLatencyMs: 'latencyMs',
  maxParams: 'params',
  maxMacs: 'macs',
} as const satisfies Record<keyof Constraints, keyof Cost>;

/** One evaluation of one candidate at one rung. */
export interface HistoryEntry {
  /** Position in the search: 0 for the first evaluation. */
  readonly order: number;
  readonly key: string;
  readonly candidate: Candidate;
  readonly cost: Cost;
  /** Proxy accuracy (higher is better); null when the evaluation failed (NaN is not JSON). */
  readonly accuracy: number | null;
  /** Why the evaluation failed, when it did. */
  readonly error?: string;
  /** Budget rung: 0 for evolution, 0.. for successive halving (budget b * eta^rung). */
  readonly rung: number;
  /** Key of the parent this candidate was mutated from; absent for random draws. */
  readonly parent?: string;
}

/** An entry whose evaluation succeeded. */
export type ScoredEntry = HistoryEntry & { readonly accuracy: number };

export function isScored(e: HistoryEntry): e is ScoredEntry {
  return e.accuracy !== null;
}

/** The constraints `cost` breaks, by name ('maxParams'); empty when it meets all. */
export function violations(cost: Cost, constraints: Constraints): (keyof Constraints)[] {
  const out: (keyof Constraints)[] = [];
  for (const [name, field] of Object.entries(CONSTRAINT_FIELDS) as [keyof Constraints, keyof Cost][]) {
    const bound = constraints[name];
    if (bound !== undefined && !(cost[field] <= bound)) out.push(name);
  }
  return out;
}

/** An objective of the Pareto front: accuracy is maximised, the costs minimised. */
export type Objective = 'accuracy' | keyof Cost;

/** `e`'s objectives as values to maximise (costs negated). */
function gains(e: ScoredEntry, objectives: readonly Objective[]): number[] {
  return objectives.map((o) => (o === 'accuracy' ? e.accuracy : -e.cost[o]));
}

/** The latest (highest-rung) scored entry of each key: a rung-0 score is superseded by a longer one. */
function latestByKey(history: readonly HistoryEntry[]): ScoredEntry[] {
  const byKey = new Map<string, ScoredEntry>();
  for (const e of history) {
    if (!isScored(e)) continue;
    const prev = byKey.get(e.key);
    if (prev === undefined || e.rung >= prev.rung) byKey.set(e.key, e);
  }
  return [...byKey.values()].sort((a, b) => a.order - b.order);
}

/**
 * The non-dominated scored entries of `history`, in evaluation order: no other entry is at least as
 * good in every objective and better in one. Entries with equal objectives are all non-dominated, so
 * only the earliest of them is kept (a front lists trade-offs, not duplicates); a candidate
 * evaluated at several rungs counts with its highest rung. Failed entries never appear.
 */
export function paretoFront(
  history: readonly HistoryEntry[],
  objectives: readonly Objective[] = ['accuracy', 'latencyMs', 'params'],
): ScoredEntry[] {
  const pts = latestByKey(history).map((e) => ({ e, g: gains(e, objectives) }));
  const front: ScoredEntry[] = [];
  const kept: number[][] = [];
  for (const p of pts) {
    const dominated = pts.some(
      (q) => q !== p && q.g.every((v, i) => v >= p.g[i]!) && q.g.some((v, i) => v > p.g[i]!),
    );
    if (dominated) continue;
    if (kept.some((g) => g.every((v, i) => v === p.g[i]))) continue;
    kept.push(p.g);
    front.push(p.e);
  }
  return front;
}

/**
 * The best scored entry meeting `constraints`: highest rung first (successive halving's survivors
 * were trained longest, so their scores are not comparable with shorter runs), then highest
 * accuracy, then the earliest. Undefined when no entry qualifies.
 */
export function best(
  history: readonly HistoryEntry[],
  constraints: Constraints = {},
): ScoredEntry | undefined {
  let top: ScoredEntry | undefined;
  for (const e of history) {
    if (!isScored(e) || violations(e.cost, constraints).length > 0) continue;
    if (top === undefined || e.rung > top.rung || (e.rung === top.rung && e.accuracy > top.accuracy)) top = e;
  }
  return top;
}
