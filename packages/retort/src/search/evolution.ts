/**
 * The search core of student architecture search: pure logic over an injected space, cost and
 * evaluation, so training, latency tables and job scheduling live elsewhere.
 *
 * - 'evolution' is regularized ("aging") evolution ("Regularized Evolution for Image Classifier
 *   Architecture Search", Real, Aggarwal, Huang & Le, AAAI 2019): a population of random feasible
 *   candidates; each cycle a tournament of `sample` random members picks the most accurate as
 *   parent, its mutation is evaluated and joins the population and the oldest member leaves. Aging
 *   (removing the oldest rather than the worst) keeps a lucky proxy score from ruling forever.
 * - 'halving' is successive halving ("Non-stochastic Best Arm Identification and Hyperparameter
 *   Optimization", Jamieson & Talwalkar, AISTATS 2016; the inner loop of Hyperband, Li et al., JMLR
 *   2018): n random feasible candidates at rung 0, the top 1/eta of each rung go on to the next,
 *   which the caller runs with eta times the budget.
 *
 * Candidates that break a constraint are never evaluated (cost is cheap, accuracy is not), a key is
 * evaluated at most once per rung, and an evaluation that throws or returns NaN is recorded as failed
 * instead of ending the search. After every batch the whole state (Rng words included) is plain JSON,
 * so `resumeSearch` continues an interrupted search with exactly the candidates the uninterrupted
 * one would have drawn. The state and its schema: search-state.ts.
 */
import { RetortError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import {
  best,
  CONSTRAINT_FIELDS,
  type Constraints,
  type Cost,
  type HistoryEntry,
  isScored,
  type ScoredEntry,
  violations,
} from './search-history.js';
import { type Pending, type SearchState, searchStateSchema } from './search-state.js';
import type { Candidate, SearchSpace } from './space-config.js';

export type { Constraints, Cost, HistoryEntry, ScoredEntry } from './search-history.js';
export { best, paretoFront, violations } from './search-history.js';
export { type SearchState, searchStateSchema } from './search-state.js';

/**
 * Proxy accuracies of `cs` (higher is better), one per candidate, trained at budget rung `rung`
 * (always 0 for evolution; the caller maps rung r to budget b * eta^r). Called with a batch so the
 * caller can run the jobs in parallel. NaN marks one candidate failed; a throw fails the batch.
 */
/** A candidate's accuracy, or why it has none (its run failed): recorded as the history entry's error. */
export type Evaluation = number | { error: string };
export type Evaluate = (cs: readonly Candidate[], rung: number) => Promise<readonly Evaluation[]>;

export interface SearchOptions {
  readonly space: SearchSpace;
  /** Seed of the search's Rng (draws, tournaments, mutations). */
  readonly seed: number;
  readonly strategy?: 'evolution' | 'halving';
  /** Evolution: members of the population (16). */
  readonly population?: number;
  /** Evolution: tournament size (4). */
  readonly sample?: number;
  /** Evolution: children to make after the initial population (64). */
  readonly cycles?: number;
  /** Halving: candidates at rung 0 (27). */
  readonly candidates?: number;
  /** Halving: 1/eta of a rung goes on, with eta times the budget (3). */
  readonly eta?: number;
  /** Halving: at most this many rungs (default: until one candidate is left). */
  readonly rungs?: number;
  /** Candidates evaluated per call of `evaluate` (1). */
  readonly parallel?: number;
  readonly constraints?: Constraints;
  /** Draws (or mutations) tried for one feasible, new candidate before giving up (1000). */
  readonly maxTries?: number;
  /** Cost of a candidate; cached by key, so it may be slow-ish but must be deterministic. */
  cost(c: Candidate): Cost | Promise<Cost>;
  evaluate: Evaluate;
  /** After each evaluation: the entry, its index (its order) and the planned number of evaluations. */
  onEvaluated?(entry: HistoryEntry, index: number, total: number): void;
  /** After each batch, with the state to save for `resumeSearch`. */
  onCheckpoint?(state: SearchState): void | Promise<void>;
  /** Checked after each batch: when aborted the search returns with `done: false`. */
  readonly signal?: AbortSignal;
}

export interface SearchResult {
  readonly state: SearchState;
  readonly history: readonly HistoryEntry[];
  /** Evolution: the population at the end, oldest first; halving: the last rung's survivors. */
  readonly population: readonly ScoredEntry[];
  /** Best feasible entry (see `best`). */
  readonly best: ScoredEntry | undefined;
  /** False when stopped by `signal` before the end. */
  readonly done: boolean;
}

type Resolved = Required<Omit<SearchOptions, 'rungs' | 'onEvaluated' | 'onCheckpoint' | 'signal'>> &
  Pick<SearchOptions, 'rungs' | 'onEvaluated' | 'onCheckpoint' | 'signal'>;

function resolve(o: SearchOptions): Resolved {
  const r: Resolved = {
    strategy: 'evolution',
    population: 16,
    sample: 4,
    cycles: 64,
    candidates: 27,
    eta: 3,
    parallel: 1,
    constraints: {},
    maxTries: 1000,
    ...o,
  };
  for (const k of ['population', 'sample', 'candidates', 'parallel', 'maxTries'] as const)
    if (!Number.isInteger(r[k]) || r[k] < 1)
      throw new RetortError(`search: ${k} must be an integer >= 1, got ${r[k]}`);
  if (!Number.isInteger(r.cycles) || r.cycles < 0)
    throw new RetortError(`search: cycles must be an integer >= 0, got ${r.cycles}`);
  if (!(r.eta >= 2)) throw new RetortError(`search: eta must be >= 2, got ${r.eta}`);
  return r;
}

/** Runs a search from the start. */
export async function runSearch(options: SearchOptions): Promise<SearchResult> {
  const o = resolve(options);
  const state: SearchState = {
    version: 1,
    strategy: o.strategy,
    space: o.space.name,
    rng: new Rng(o.seed).getState(),
    cycle: 0,
    rung: 0,
    rungKeys: [],
    queue: [],
    population: [],
    history: [],
    done: false,
  };
  return new Searcher(o, state, true).run();
}

/**
 * Continues the search saved in `state` (from `onCheckpoint` or a result) with `options`, which
 * must name the same space and strategy; `cycles` may grow to search longer, and `seed` is unused
 * (the Rng continues from the state). The candidates in the state are checked against the space.
 */
export async function resumeSearch(state: unknown, options: SearchOptions): Promise<SearchResult> {
  const o = resolve(options);
  const r = searchStateSchema.safeParse(state);
  if (!r.success) {
    const iss = r.error.issues[0];
    throw new RetortError(`resumeSearch: not a search state: ${iss?.path.join('.')}: ${iss?.message}`);
  }
  // JSON has no undefined, so the parsed optional fields are absent rather than undefined.
  const s = r.data as SearchState;
  if (s.space !== o.space.name || s.strategy !== o.strategy)
    throw new RetortError(
      `resumeSearch: the state is a ${s.strategy} search of space '${s.space}', the options ask for ${o.strategy} of '${o.space.name}'`,
    );
  for (const e of [...s.history, ...s.queue]) o.space.candidate(e.candidate);
  return new Searcher(o, { ...s, done: false }, false).run();
}

class Searcher {
  private readonly rng = new Rng(0);
  private readonly costs = new Map<string, Cost>();
  /** `${rung}:${key}` of every evaluated or queued candidate. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly o: Resolved,
    private readonly s: SearchState,
    private readonly fresh: boolean,
  ) {
    this.rng.setState(s.rng);
    for (const e of s.history) this.seen.add(`${e.rung}:${e.key}`);
    for (const p of s.queue) this.seen.add(`${s.rung}:${p.key}`);
  }

  async run(): Promise<SearchResult> {
    const o = this.o;
    if (this.fresh) {
      const n = o.strategy === 'evolution' ? o.population : o.candidates;
      this.s.queue = await this.draw(n);
      if (o.strategy === 'halving') this.s.rungKeys = this.s.queue.map((p) => p.key);
    }
    while (!this.s.done) {
      if (o.signal?.aborted) return this.result();
      if (this.s.queue.length > 0) await this.evaluate(this.s.queue.splice(0, o.parallel), this.s.rung);
      else if (o.strategy === 'evolution') await this.evolve();
      else this.nextRung();
      await o.onCheckpoint?.(this.snapshot());
    }
    return this.result();
  }

  private snapshot(): SearchState {
    return structuredClone({ ...this.s, rng: this.rng.getState() });
  }

  private result(): SearchResult {
    const h = this.s.history;
    const pop =
      this.o.strategy === 'evolution'
        ? this.s.population.map((k) => this.entry(k, 0))
        : h.filter(
            (e): e is ScoredEntry => isScored(e) && e.rung === this.s.rung && this.s.rungKeys.includes(e.key),
          );
    return {
      state: this.snapshot(),
      history: h,
      population: pop,
      best: best(h, this.o.constraints),
      done: this.s.done,
    };
  }

  private entry(key: string, rung: number): ScoredEntry {
    const e = this.s.history.find((x) => x.key === key && x.rung === rung);
    if (e === undefined || !isScored(e)) throw new RetortError(`search state: no scored entry for '${key}'`);
    return e;
  }

  private async costOf(key: string, c: Candidate): Promise<Cost> {
    let cost = this.costs.get(key);
    if (cost === undefined) {
      cost = await this.o.cost(c);
      this.costs.set(key, cost);
    }
    return cost;
  }

  /**
   * Up to `n` new feasible candidates by rejection sampling, `maxTries` draws for each. Fewer when
   * the space runs out of new feasible points; an error naming the constraints when none is found.
   */
  private async draw(n: number): Promise<Pending[]> {
    const o = this.o;
    const out: Pending[] = [];
    const rejected = new Map<keyof Constraints, { count: number; lowest: number }>();
    while (out.length < n) {
      let found: Pending | undefined;
      for (let t = 0; t < o.maxTries && found === undefined; t++) {
        const c = o.space.sample(this.rng);
        const key = o.space.key(c);
        if (this.seen.has(`0:${key}`)) continue;
        const cost = await this.costOf(key, c);
        const bad = violations(cost, o.constraints);
        for (const name of bad) {
          const r = rejected.get(name) ?? { count: 0, lowest: Number.POSITIVE_INFINITY };
          rejected.set(name, {
            count: r.count + 1,
            lowest: Math.min(r.lowest, cost[CONSTRAINT_FIELDS[name]]),
          });
        }
        if (bad.length === 0) found = { key, candidate: c, cost };
      }
      if (found === undefined) break;
      this.seen.add(`0:${found.key}`);
      out.push(found);
    }
    if (out.length === 0) {
      const why = [...rejected].map(
        ([name, r]) =>
          `${name} = ${o.constraints[name]} rejected ${r.count} (lowest ${CONSTRAINT_FIELDS[name]} seen: ${r.lowest})`,
      );
      throw new RetortError(
        `search: no candidate of space '${o.space.name}' met the constraints in ${o.maxTries} draws: ${why.join('; ') || 'every draw was evaluated already'}`,
      );
    }
    return out;
  }

  /**
   * A new feasible mutation of `parent`, or undefined after `maxTries`. A child that breaks a
   * constraint is replaced by another mutation of the parent (so children stay one gene away); a
   * child seen before is mutated further, since the parent's neighbours may all be taken.
   */
  private async child(parent: ScoredEntry): Promise<Pending | undefined> {
    const o = this.o;
    let base = parent.candidate;
    for (let t = 0; t < o.maxTries; t++) {
      const c = o.space.mutate(base, this.rng);
      const key = o.space.key(c);
      if (this.seen.has(`0:${key}`)) {
        base = c;
        continue;
      }
      const cost = await this.costOf(key, c);
      if (violations(cost, o.constraints).length === 0) return { key, candidate: c, cost };
      base = parent.candidate;
    }
    return undefined;
  }

  /** The most accurate of `sample` distinct random members (the first drawn among equals). */
  private tournament(): ScoredEntry {
    const pop = this.s.population;
    const idx = [...pop.keys()];
    let top: ScoredEntry | undefined;
    for (let i = 0; i < Math.min(this.o.sample, pop.length); i++) {
      const j = i + this.rng.int(idx.length - i);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
      const e = this.entry(pop[idx[i]!]!, 0);
      if (top === undefined || e.accuracy > top.accuracy) top = e;
    }
    return top!;
  }

  /** One batch of children: tournaments, mutations, evaluation, aging. */
  private async evolve(): Promise<void> {
    const o = this.o;
    const s = this.s;
    if (s.population.length === 0) {
      const errs = s.history.filter((e) => e.error !== undefined).map((e) => `${e.key}: ${e.error}`);
      throw new RetortError(
        `search: every evaluation of the initial population failed (${errs.slice(0, 3).join('; ')})`,
      );
    }
    if (s.cycle >= o.cycles || this.seenAtRung0() >= o.space.size) {
      s.done = true;
      return;
    }
    const batch: Pending[] = [];
    const parents: string[] = [];
    // Each child slot is one cycle, found or not, so a search of a crowded space still ends.
    for (let made = 0, n = Math.min(o.parallel, o.cycles - s.cycle); made < n; made++) {
      s.cycle++;
      const parent = this.tournament();
      const c = await this.child(parent);
      if (c === undefined) continue;
      this.seen.add(`0:${c.key}`);
      batch.push(c);
      parents.push(parent.key);
    }
    await this.evaluate(batch, 0, parents);
  }

  private seenAtRung0(): number {
    let n = 0;
    for (const k of this.seen) if (k.startsWith('0:')) n++;
    return n;
  }

  /** Halving: the top 1/eta of the finished rung go on to the next, or the search ends. */
  private nextRung(): void {
    const o = this.o;
    const s = this.s;
    const scored = s.history
      .filter((e): e is ScoredEntry => isScored(e) && e.rung === s.rung && s.rungKeys.includes(e.key))
      .sort((a, b) => b.accuracy - a.accuracy || a.order - b.order);
    const keep = Math.min(scored.length, Math.max(1, Math.floor(s.rungKeys.length / o.eta)));
    if (scored.length <= 1 || s.rung + 1 >= this.maxRungs()) {
      s.done = true;
      return;
    }
    s.rung++;
    s.queue = scored.slice(0, keep).map(({ key, candidate, cost }) => ({ key, candidate, cost }));
    s.rungKeys = s.queue.map((p) => p.key);
    for (const p of s.queue) this.seen.add(`${s.rung}:${p.key}`);
  }

  /** Rungs of halving: floor(log_eta(candidates)) + 1 (down to one survivor), or `rungs`. */
  private maxRungs(): number {
    if (this.o.rungs !== undefined) return this.o.rungs;
    let r = 1;
    for (let n = this.o.candidates; n >= this.o.eta; n = Math.floor(n / this.o.eta)) r++;
    return r;
  }

  /** Planned evaluations, for progress reports. */
  private total(): number {
    const o = this.o;
    if (o.strategy === 'evolution') return o.population + o.cycles;
    let t = 0;
    for (let r = 0, n = o.candidates; r < this.maxRungs() && n >= 1; r++, n = Math.floor(n / o.eta)) t += n;
    return t;
  }

  /** Evaluates one batch, records it, and (evolution) ages the population. */
  private async evaluate(
    batch: readonly Pending[],
    rung: number,
    parents?: readonly string[],
  ): Promise<void> {
    if (batch.length === 0) return;
    let accs: readonly Evaluation[] = [];
    let batchError: string | undefined;
    try {
      accs = await this.o.evaluate(
        batch.map((p) => p.candidate),
        rung,
      );
      if (accs.length !== batch.length)
        batchError = `evaluate returned ${accs.length} accuracies for ${batch.length} candidates`;
    } catch (e) {
      batchError = e instanceof Error ? e.message : String(e);
    }
    const s = this.s;
    for (const [i, p] of batch.entries()) {
      const v = accs[i];
      const acc = typeof v === 'number' ? v : undefined;
      const ok = batchError === undefined && acc !== undefined && Number.isFinite(acc);
      const why =
        batchError ?? (typeof v === 'object' ? v.error : `evaluate returned ${v} (not a finite number)`);
      const parent = parents?.[i];
      const entry: HistoryEntry = {
        order: s.history.length,
        key: p.key,
        candidate: p.candidate,
        cost: p.cost,
        accuracy: ok ? acc : null,
        ...(ok ? {} : { error: why }),
        rung,
        ...(parent === undefined ? {} : { parent }),
      };
      s.history.push(entry);
      if (ok && this.o.strategy === 'evolution') {
        s.population.push(p.key);
        // Aging: the oldest member leaves, whatever its accuracy (Real et al. 2019, Alg. 1).
        while (s.population.length > this.o.population) s.population.shift();
      }
      this.o.onEvaluated?.(entry, entry.order, this.total());
    }
  }
}
