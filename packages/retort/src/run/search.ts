/**
 * `retort search <config>`: which student, under a latency (or size) budget on this machine, learns
 * best from the teacher? The experiment's `search` section names a space, a strategy, constraints
 * and a proxy training; the rest of the experiment (teacher, data, losses, optimizer, schedule) is
 * the recipe each candidate is trained with. Cost comes from the latency table and the parameter
 * and MAC counters; accuracy from short runs of the recipe, trained as sweep jobs (local worker
 * processes or BullMQ workers). Everything lands in `<runs>/<name>/search/`: state.json after every
 * batch (what `--resume` continues), then pareto.md / .json / .svg and best.yaml, the experiment
 * with the best feasible candidate as its model, ready for `retort distill`.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { Document } from 'yaml';
import { z } from 'zod';
import { parseOrThrow } from '../config/errors.js';
import { type Experiment, experimentSchema, runNameSchema } from '../config/experiment.js';
import { readConfigMapping } from '../config/load.js';
import { resolveConfigPaths } from '../config/paths.js';
import { buildData } from '../data/build.js';
import { parseTerms } from '../distill/schemes/offline.js';
import { buildModel } from '../models/index.js';
import { candidateCost, modelCost } from '../search/candidate-cost.js';
import {
  type Evaluate,
  resumeSearch,
  runSearch,
  type SearchOptions,
  type SearchState,
} from '../search/evolution.js';
import {
  type LatencySetting,
  LatencyTable,
  type MachineFingerprint,
  type MeasureFn,
  settingId,
} from '../search/latency-table.js';
import {
  parseSearchConfig,
  type ResolvedStrategy,
  resolveStrategy,
  type SearchConfig,
} from '../search/search-config.js';
import {
  best,
  type Constraints,
  type Cost,
  type HistoryEntry,
  type ScoredEntry,
} from '../search/search-history.js';
import {
  constraintsText,
  type SearchSummary,
  searchFront,
  writeSearchReport,
} from '../search/search-report.js';
import { type Candidate, type SearchSpace, searchSpace } from '../search/space-config.js';
import { acquireRunLock, releaseRunLock } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { RetortError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { resolveScheme } from './experiment.js';
import { CandidateJobs, proxyAccuracy } from './search-jobs.js';
import { formatDuration } from './sweep.js';
import { openStore } from './sweep-store.js';

export interface StudentSearchOptions {
  /** Folder of run folders (default 'runs'): candidate runs, and `<name>/search/`. */
  runsRoot?: string;
  /** `key=value` overrides, as `--set` (with a config path only). */
  overrides?: readonly string[];
  /** Local worker processes training candidates (default 1). */
  local?: number;
  /** OpenMP threads per worker (default: the cores split between them). */
  threads?: number;
  /** Redis address: candidates go to BullMQ for `retort worker`s instead of local processes. */
  queue?: string;
  queueName?: string;
  /** Continue from search/state.json (finished candidate runs are reused either way). */
  resume?: boolean;
  /** Start over although search/state.json exists (candidate runs that finished are still reused). */
  force?: boolean;
  /** Space size, constraints and the first candidates with their costs; no training, no state. */
  dryRun?: boolean;
  log?: (line: string) => void;
  /** Stops after the running batch (which is not recorded; --resume redoes it, reusing finished runs). */
  signal?: AbortSignal;
  /** Times the latency table's missing units (default: the table's real measurer). */
  measure?: MeasureFn;
  /** This machine's fingerprint, for the latency table (default: measured). */
  fingerprint?: MachineFingerprint;
}

export interface StudentSearchResult {
  name: string;
  /** `<runs>/<name>/search`. */
  dir: string;
  /** False when stopped by the signal before the end (or a dry run). */
  done: boolean;
  spaceSize: number;
  setting: LatencySetting;
  constraints: Constraints;
  reference?: { model: string; predictedMs: number; measuredMs: number };
  accuracySplit: 'validation' | 'test';
  history: readonly HistoryEntry[];
  front: ScoredEntry[];
  best: ScoredEntry | undefined;
  /** Dry run: the first population (evolution) or rung 0 (halving), drawn and costed. */
  firstCandidates?: { key: string; candidate: Candidate; cost: Cost }[];
  /** Wall-clock seconds of the search over every resumed part. */
  seconds: number;
  files?: { state: string; md: string; json: string; svg: string; bestYaml?: string };
}

/** state.json: the search state plus what this command needs to resume it. */
interface SavedState extends SearchState {
  retort: {
    identity: string;
    seconds: number;
    /**
     * The bounds the search started with. A latencyOf bound is a prediction of the table as it was
     * then; a resumed search keeps it, so that every candidate is judged by one bound even when
     * the table was re-timed or fitted in between.
     */
    constraints?: Constraints;
    reference?: StudentSearchResult['reference'];
  };
}

/** A config path (with overrides) or an object as mapping, with relative paths resolved. */
function readInput(
  config: string | Record<string, unknown>,
  overrides: readonly string[],
): { raw: Record<string, unknown>; where: string } {
  if (typeof config === 'string') return { raw: readConfigMapping(config, overrides), where: config };
  if (overrides.length > 0) throw new RetortError('overrides apply to a config file path, not to an object');
  const raw = structuredClone(config);
  resolveConfigPaths(raw, process.cwd());
  return { raw, where: 'search config' };
}

const fmtCost = (c: Cost) =>
  `${c.latencyMs.toFixed(4)} ms, ${c.params.toLocaleString('en-US')} params, ${c.macs.toLocaleString('en-US')} MACs`;

/** A search file, checked: its section, its space, and the recipe as candidate experiments. */
export interface LoadedSearch {
  /** The file (or 'search config' for an object), for error messages. */
  where: string;
  name: string;
  cfg: SearchConfig;
  space: SearchSpace;
  strategy: ResolvedStrategy;
  /** The file without `search` and `model`, relative paths resolved: what best.yaml starts from. */
  recipe: Record<string, unknown>;
  /**
   * The candidate's proxy experiment at `rung`, named `<name>-<key>-r<rung>-<tag>` (tag: a hash of
   * the recipe and the proxy settings).
   */
  candidateExperiment(c: Candidate, rung: number): Experiment;
  /** A candidate's proxy experiment, checked (losses, scheme, data section). */
  probe: Experiment;
  accuracySplit: 'validation' | 'test';
  /** The `search` section, the recipe and the proxy data as JSON: what --resume must find unchanged (cycles and parallel may change). */
  identity: string;
}

/**
 * Reads and checks a search file (or object) before anything slow: the search section, the space,
 * and the recipe with one candidate as its model (its losses, scheme and data section).
 */
export function loadSearch(
  config: string | Record<string, unknown>,
  overrides: readonly string[] = [],
  log: (line: string) => void = () => {},
): LoadedSearch {
  const { raw, where } = readInput(config, overrides);
  if (raw['search'] === undefined)
    throw new RetortError(`${where}: no 'search' section (space, strategy, constraints, latency, proxy)`);
  const name = parseOrThrow(z.strictObject({ name: runNameSchema }), { name: raw['name'] }, where).name;
  const cfg = parseSearchConfig(raw['search'], where);
  const space = searchSpace(cfg.space, `${where}: search.space`);
  const strategy = resolveStrategy(cfg.strategy, typeof raw['seed'] === 'number' ? raw['seed'] : 1);
  const { search: _s, model, ...recipe } = raw;
  if (model !== undefined) log(`${where}: model is replaced by each candidate of space ${space.name}`);
  if (recipe['stages'] !== undefined)
    throw new RetortError(
      `${where}: stages: a search trains each candidate with losses/epochs (one stage); put the recipe in losses`,
    );
  const proxyData = {
    ...((recipe['data'] ?? {}) as Record<string, unknown>),
    ...(cfg.proxy.trainLimit !== undefined ? { trainLimit: cfg.proxy.trainLimit } : {}),
    ...(cfg.proxy.valFraction !== undefined ? { valFraction: cfg.proxy.valFraction } : {}),
  };
  // Candidate runs are named by what they train: a changed recipe or proxy gets runs of its own
  // instead of finding the old runs' folders (which the store refuses as another config's).
  const recipeTag = createHash('sha256')
    .update(JSON.stringify({ recipe, proxyData, epochs: cfg.proxy.epochs, eta: strategy.eta }))
    .digest('hex')
    .slice(0, 6);
  const candidateExperiment = (c: Candidate, rung: number): Experiment =>
    parseOrThrow(
      experimentSchema,
      {
        ...recipe,
        name: `${name}-${space.key(c)}-r${rung}-${recipeTag}`,
        model: { space: space.name, candidate: c },
        data: proxyData,
        epochs: cfg.proxy.epochs * strategy.eta ** rung,
      },
      where,
    );
  const probe = candidateExperiment(space.sample(new Rng(strategy.seed)), 0);
  if (probe.data.dataset === 'code')
    throw new RetortError(
      `${where}: data.dataset code: candidates train in worker processes, which read files`,
    );
  resolveScheme(
    probe,
    [{ name: 'main', epochs: probe.epochs, losses: probe.losses, terms: parseTerms(probe.losses, where) }],
    where,
  );
  const { cycles: _c, parallel: _p, ...fixed } = strategy;
  return {
    where,
    name,
    cfg,
    space,
    strategy,
    recipe,
    candidateExperiment,
    probe,
    accuracySplit: probe.data.valFraction > 0 ? 'validation' : 'test',
    identity: JSON.stringify({ search: { ...cfg, strategy: fixed }, recipe, proxyData }),
  };
}

/** Runs (or with `dryRun`, previews) the search in `config`'s `search` section; see the file header. */
export async function search(
  config: string | Record<string, unknown>,
  opts: StudentSearchOptions = {},
): Promise<StudentSearchResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const runsRoot = opts.runsRoot ?? 'runs';
  const loaded = loadSearch(config, opts.overrides ?? [], log);
  const { where, name, cfg, space, strategy, recipe, candidateExperiment, probe, accuracySplit, identity } =
    loaded;
  const dir = join(runsRoot, name, 'search');

  await tf.setBackend('native');
  const data = buildData(probe.data, probe.seed);
  const shape = { inputShape: data.shape, numClasses: data.numClasses };
  const setting: LatencySetting = { runtime: cfg.latency.runtime, batch: cfg.latency.batch };
  const tablePath = cfg.latency.table ?? join(runsRoot, '.cache', 'search', 'latency-table.json');
  const table = await LatencyTable.open(tablePath, {
    ...(opts.fingerprint ? { fingerprint: opts.fingerprint } : {}),
    onCorrupt: 'rebuild',
  });
  for (const n of table.notices) log(n);
  const measure = opts.measure ?? table.measurer({ minTimeMs: 100 });
  let measured = 0;
  const costOpts = {
    table,
    setting,
    measure,
    onMeasured: () => {
      measured++;
      if (measured % 20 === 0)
        log(`latency table: ${measured} unit timings measured at ${settingId(setting)}`);
    },
  };
  log(
    `search ${name}: space ${space.name} (${space.size.toLocaleString('en-US')} candidates); latency ${settingId(setting)} from ${tablePath} (machine ${table.id}, ${table.size(setting)} entries)`,
  );

  // Constraints; latencyOf is the named model's latency predicted by the same table.
  let reference: StudentSearchResult['reference'];
  let maxLatencyMs = cfg.constraints.latencyMs;
  if (cfg.constraints.latencyOf !== undefined) {
    const m = buildModel(cfg.constraints.latencyOf, { ...shape, seed: 0 });
    try {
      const predictedMs = (await modelCost(m, costOpts)).latencyMs;
      const measuredMs = await measure({ setting, what: 'model', key: undefined, model: () => m });
      reference = { model: cfg.constraints.latencyOf, predictedMs, measuredMs };
      maxLatencyMs = Math.min(maxLatencyMs ?? Number.POSITIVE_INFINITY, predictedMs);
    } finally {
      m.dispose();
    }
  }
  let constraints: Constraints = {
    ...(maxLatencyMs !== undefined ? { maxLatencyMs } : {}),
    ...(cfg.constraints.params !== undefined ? { maxParams: cfg.constraints.params } : {}),
    ...(cfg.constraints.macs !== undefined ? { maxMacs: cfg.constraints.macs } : {}),
  };
  log(
    `constraints: ${constraintsText(constraints)}${reference ? ` (${reference.model}: ${reference.predictedMs.toFixed(4)} ms predicted, ${reference.measuredMs.toFixed(4)} ms measured as a whole model)` : ''}`,
  );

  const base = () =>
    ({
      name,
      dir,
      spaceSize: space.size,
      setting,
      constraints,
      ...(reference ? { reference } : {}),
      accuracySplit,
    }) as const;
  const searchOptions = (evaluate: Evaluate, extra: Partial<SearchOptions>): SearchOptions => ({
    space,
    seed: strategy.seed,
    strategy: strategy.name,
    population: strategy.population,
    sample: strategy.sample,
    cycles: strategy.cycles,
    candidates: strategy.candidates,
    eta: strategy.eta,
    ...(strategy.rungs !== undefined ? { rungs: strategy.rungs } : {}),
    parallel: strategy.parallel,
    constraints,
    cost: candidateCost(space, shape, costOpts),
    evaluate,
    ...extra,
  });

  if (opts.dryRun) {
    // An aborted signal stops the search right after it drew (and costed) its first candidates.
    const stop = new AbortController();
    stop.abort();
    const r = await runSearch(searchOptions(async () => [], { signal: stop.signal }));
    return {
      ...base(),
      done: false,
      history: [],
      front: [],
      best: undefined,
      firstCandidates: r.state.queue.map((p) => ({ key: p.key, candidate: p.candidate, cost: p.cost })),
      seconds: (performance.now() - t0) / 1000,
    };
  }

  const statePath = join(dir, 'state.json');
  mkdirSync(dir, { recursive: true });
  // One process per search: a second one would interleave its batches into the same state.
  const lock = acquireRunLock(dir, log);
  try {
    let saved: SavedState | undefined;
    if (existsSync(statePath)) {
      if (opts.force) {
        for (const f of ['state.json', 'pareto.md', 'pareto.json', 'pareto.svg', 'best.yaml'])
          rmSync(join(dir, f), { force: true });
      } else if (!opts.resume)
        throw new RetortError(
          `${statePath} exists: --resume continues that search, --force starts it again (finished candidate runs are reused either way)`,
          { file: statePath },
        );
      else {
        saved = JSON.parse(readFileSync(statePath, 'utf8')) as SavedState;
        if (saved.retort?.identity !== identity)
          throw new RetortError(
            `${statePath}: the search was started with another config (space, strategy, constraints, proxy or recipe changed); --force starts it again`,
            { file: statePath },
          );
        const kept = saved.retort.constraints;
        if (kept !== undefined) {
          if (JSON.stringify(kept) !== JSON.stringify(constraints))
            log(
              `search ${name}: the bounds are now ${constraintsText(constraints)}; the resumed search keeps those it started with (${statePath}): ${constraintsText(kept)}`,
            );
          constraints = kept;
          reference = saved.retort.reference;
        }
      }
    } else if (opts.resume) log(`${statePath}: nothing to resume, starting the search`);

    const store = openStore(runsRoot);
    const jobs = new CandidateJobs({
      store,
      where,
      ...(opts.local !== undefined ? { local: opts.local } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
      ...(opts.queueName !== undefined ? { queueName: opts.queueName } : {}),
      log,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (opts.queue === undefined && (opts.local ?? 1) > strategy.parallel)
      log(
        `search: ${opts.local} local workers but strategy.parallel ${strategy.parallel}: only ${strategy.parallel} candidate(s) train at once`,
      );
    const evaluate: Evaluate = async (cs, rung) => {
      const exps = cs.map((c) => candidateExperiment(c, rung));
      const out = await jobs.run(exps);
      return out.map((o) => (o.results ? proxyAccuracy(o.results) : { error: o.error ?? 'failed' }));
    };

    const before = saved?.retort.seconds ?? 0;
    const elapsed = () => before + (performance.now() - t0) / 1000;
    let scoredHere = 0;
    const tHere = performance.now();
    const onEvaluated = (e: HistoryEntry, index: number, total: number) => {
      // A batch cut short by the signal: its runs did not fail, they were stopped.
      if (opts.signal?.aborted && e.accuracy === null) return;
      scoredHere++;
      const per = (performance.now() - tHere) / 1000 / scoredHere;
      const left = Math.max(0, total - index - 1);
      const acc =
        e.accuracy === null
          ? `failed (${e.error ?? '?'})`
          : `${accuracySplit} top-1 ${e.accuracy.toFixed(2)}%`;
      log(
        `search: candidate ${index + 1} of ${total} ${e.key}${e.rung > 0 ? ` (rung ${e.rung})` : ''}: ${fmtCost(e.cost)}; ${acc}; elapsed ${formatDuration(elapsed())}${left > 0 ? `, ETA ${formatDuration(per * left)}` : ''}`,
      );
    };
    let lastSaved: readonly HistoryEntry[] = saved?.history ?? [];
    const onCheckpoint = (state: SearchState) => {
      // An aborted batch was cut short: its entries are not results. The last state stays, and
      // --resume runs the batch again (its runs that finished are reused).
      if (opts.signal?.aborted) return;
      const s: SavedState = {
        ...state,
        retort: { identity, seconds: elapsed(), constraints, ...(reference ? { reference } : {}) },
      };
      writeFileAtomic(statePath, `${JSON.stringify(s)}\n`);
      lastSaved = state.history;
    };
    const so = searchOptions(evaluate, {
      onEvaluated,
      onCheckpoint,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const r = saved ? await resumeSearch(saved, so) : await runSearch(so);
    const seconds = elapsed();
    // Stopped: what state.json holds (without the batch that was cut short).
    const history = r.done ? r.history : lastSaved;
    const result: StudentSearchResult = {
      ...base(),
      done: r.done,
      history,
      front: searchFront(history, constraints),
      best: best(history, constraints),
      seconds,
    };
    if (!r.done) {
      log(`search ${name}: stopped after ${r.history.length} evaluations; --resume continues it`);
      return result;
    }
    const summary: SearchSummary = {
      name,
      space: { name: space.name, size: space.size },
      strategy,
      setting,
      constraints,
      ...(reference ? { reference } : {}),
      accuracySplit,
      proxy: { epochs: cfg.proxy.epochs, trainImages: probe.data.trainLimit },
      seconds,
      history: r.history,
    };
    const files = await writeSearchReport(dir, summary);
    let bestYaml: string | undefined;
    if (result.best) {
      bestYaml = join(dir, 'best.yaml');
      writeFileAtomic(
        bestYaml,
        bestExperimentYaml(recipe, space.name, result.best, { name, where, strategy }),
      );
    }
    log(
      `search ${name}: ${r.history.length} evaluations in ${formatDuration(seconds)}; best feasible ${result.best ? `${result.best.key} (${result.best.accuracy.toFixed(2)}%, ${fmtCost(result.best.cost)})` : 'none'}; ${files.md}`,
    );
    return { ...result, files: { state: statePath, ...files, ...(bestYaml ? { bestYaml } : {}) } };
  } finally {
    releaseRunLock(lock);
  }
}

/**
 * best.yaml: the recipe (the search file without `search`, relative paths resolved) with the best
 * candidate as its model and a name of its own, checked against the experiment schema.
 */
function bestExperimentYaml(
  recipe: Record<string, unknown>,
  spaceName: string,
  top: ScoredEntry,
  info: { name: string; where: string; strategy: ResolvedStrategy },
): string {
  const { name: _n, ...rest } = recipe;
  const exp = {
    name: `${info.name}-${top.key}`,
    model: { space: spaceName, candidate: top.candidate },
    ...rest,
  };
  const command = rest['teacher'] !== undefined || rest['scheme'] !== undefined ? 'distill' : 'train';
  parseOrThrow(experimentSchema, exp, `${info.where}: best.yaml`);
  const doc = new Document(exp);
  const node = doc.get('model', true) as { flow?: boolean } | undefined;
  if (node) node.flow = true;
  doc.commentBefore = [
    ` Written by retort search (${info.where}): the best feasible candidate, ${top.key},`,
    ` proxy accuracy ${top.accuracy.toFixed(2)}%, ${fmtCost(top.cost)}.`,
    ` Train it in full with: retort ${command} <this file> (with the search's --runs).`,
  ].join('\n');
  return doc.toString();
}
