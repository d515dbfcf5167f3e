/**
 * Sweeps: a grid of runs (sweep-grid.ts) turned into jobs (sweep-job.ts) and run either by N local
 * worker processes (no Redis) or through a BullMQ queue on Redis, whose workers (`retort worker`)
 * may sit on any machine that sees the run store. BullMQ brings what a job engine must have and
 * Retort should not grow itself: retries, stalled-job detection (a dead worker's job goes back to
 * the queue), priorities, parent/child flows, and existing dashboards.
 *
 * Order of work: when runs read a teacher cache that does not exist yet, the cache is computed first
 * as `teacherShards` shard jobs plus a merge (the same bytes as one pass), so every student of the
 * grid starts from it instead of each computing it; then the runs, in the grid's order.
 */

import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { RetortError } from '../util/errors.js';
import type { SweepGrid, SweepRun } from './sweep-grid.js';
import {
  cachePath,
  JobInterrupted,
  type JobOutcome,
  type JobProgress,
  mergeJobId,
  type SweepJob,
  spawnJob,
} from './sweep-job.js';
import type { RunState, RunStore } from './sweep-store.js';

export interface PlanOptions {
  /** Shard jobs per missing teacher cache (0: each run computes its cache itself, as without a sweep). */
  teacherShards: number;
  log?: (line: string) => void;
}

/**
 * The jobs that finish `runs` in `store`: shard and merge jobs for the teacher caches the pending
 * runs need and the store lacks, then one job per run not finished (a finished one is never redone).
 */
export async function planJobs(
  runs: readonly SweepRun[],
  store: RunStore,
  opts: PlanOptions,
): Promise<SweepJob[]> {
  const pending = runs.filter((r) => store.finished(r.experiment) === null);
  const caches = new Map<string, SweepRun>();
  const keyOf = new Map<string, string>();
  if (opts.teacherShards > 0 && pending.some((r) => r.experiment.teacher !== undefined)) {
    const { teacherCachePlan } = await import('./teacher-shards.js');
    // Runs that differ only in what the cache does not depend on (their name, optimizer, epochs...)
    // share one plan; computing a plan loads the data and the teacher.
    const memo = new Map<string, string | null>();
    for (const r of pending) {
      if (r.experiment.teacher === undefined) continue;
      const { name: _n, optimizer: _o, schedule: _s, epochs: _e, ...rest } = r.experiment;
      const sig = JSON.stringify(rest);
      if (!memo.has(sig)) {
        const plan = await teacherCachePlan(r.experiment, r.file, { runsRoot: store.runsRoot });
        memo.set(sig, plan === null ? null : plan.key);
      }
      const key = memo.get(sig) ?? null;
      if (key === null || existsSync(cachePath(store, key))) continue;
      keyOf.set(r.name, key);
      if (!caches.has(key)) caches.set(key, r);
    }
  }
  const jobs: SweepJob[] = [];
  for (const [key, r] of caches) {
    const common = { where: r.file, experiment: r.experiment, cacheKey: key };
    const n = opts.teacherShards;
    for (let i = 0; i < n; i++)
      jobs.push({
        ...common,
        kind: 'teacher-shard',
        id: `${mergeJobId(key)}-${i + 1}of${n}`,
        shard: i,
        shards: n,
      });
    jobs.push({ ...common, kind: 'teacher-merge', id: mergeJobId(key), shards: n });
    opts.log?.(`teacher cache ${key}: ${n} shard job${n === 1 ? '' : 's'} and a merge before its runs`);
  }
  for (const r of pending) {
    const key = keyOf.get(r.name);
    jobs.push({
      kind: 'run',
      id: r.name,
      where: r.file,
      experiment: r.experiment,
      ...(key !== undefined ? { cacheKey: key } : {}),
    });
  }
  return jobs;
}

/** Jobs a job waits for: a merge its shards, a run its cache's merge. */
function dependencies(job: SweepJob, jobs: readonly SweepJob[]): string[] {
  if (job.kind === 'teacher-merge')
    return jobs.filter((j) => j.kind === 'teacher-shard' && j.cacheKey === job.cacheKey).map((j) => j.id);
  if (job.kind === 'run' && job.cacheKey !== undefined) return [mergeJobId(job.cacheKey)];
  return [];
}

export interface LocalOptions {
  /** Worker processes at once. */
  workers: number;
  /** OpenMP threads per worker (default: the cores split between the workers). */
  threads?: number;
  /** How often a job whose process died is started again (it resumes). */
  retries?: number;
  log?: (line: string) => void;
  onProgress?: (id: string, p: JobProgress) => void;
  signal?: AbortSignal;
  /** Test hook: each started child process. */
  onChild?: (id: string, child: ChildProcess) => void;
}

export interface SweepSummary {
  done: JobOutcome[];
  failed: { id: string; message: string }[];
  seconds: number;
}

/** Cores split between `workers` processes (tfjs's JS work is one thread per process). */
export function threadsPer(workers: number): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, workers)));
}

/**
 * Runs `jobs` in `workers` child processes on this machine, each job when the jobs it depends on
 * have ended (a failed cache merge does not hold its runs back: they compute the cache themselves).
 * A job whose process died (killed, out of memory) is started again and resumes; a job that failed
 * with an error is reported and the others go on.
 */
export async function runLocal(
  jobs: readonly SweepJob[],
  store: RunStore,
  opts: LocalOptions,
): Promise<SweepSummary> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const threads = opts.threads ?? threadsPer(opts.workers);
  const retries = opts.retries ?? 2;
  const ended = new Set<string>();
  const started = new Set<string>();
  const attempts = new Map<string, number>();
  const summary: SweepSummary = { done: [], failed: [], seconds: 0 };
  const children = new Set<ChildProcess>();
  const abort = () => {
    for (const c of children) c.kill('SIGTERM');
  };
  opts.signal?.addEventListener('abort', abort, { once: true });
  const ready = () =>
    jobs.find(
      (j) =>
        !started.has(j.id) &&
        dependencies(j, jobs).every((d) => ended.has(d) || !jobs.some((x) => x.id === d)),
    );
  try {
    await new Promise<void>((finish) => {
      let running = 0;
      const pump = () => {
        if (opts.signal?.aborted) {
          if (running === 0) finish();
          return;
        }
        for (let j = ready(); j !== undefined && running < opts.workers; j = ready()) {
          const job = j;
          started.add(job.id);
          running++;
          const n = (attempts.get(job.id) ?? 0) + 1;
          attempts.set(job.id, n);
          log(`[${job.id}] start${n > 1 ? ` (attempt ${n}: resumes)` : ''}`);
          spawnJob(job, {
            store: store.runsRoot,
            threads,
            log: (l) => log(`[${job.id}] ${l}`),
            onProgress: (p) => opts.onProgress?.(job.id, p),
            onChild: (c) => {
              children.add(c);
              c.once('exit', () => children.delete(c));
              opts.onChild?.(job.id, c);
            },
          })
            .then((o) => {
              summary.done.push(o);
              ended.add(job.id);
              log(`[${job.id}] ${o.skipped ? 'already done' : `done in ${o.seconds.toFixed(1)} s`}`);
            })
            .catch((e: Error) => {
              if (e instanceof JobInterrupted && n <= retries && !opts.signal?.aborted) {
                log(`[${job.id}] ${e.message}; starting it again`);
                started.delete(job.id);
              } else {
                summary.failed.push({ id: job.id, message: e.message });
                ended.add(job.id);
                log(`[${job.id}] failed: ${e.message}`);
              }
            })
            .finally(() => {
              running--;
              pump();
            });
        }
        if (running === 0) finish();
      };
      pump();
    });
  } finally {
    opts.signal?.removeEventListener('abort', abort);
  }
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}

/** One status line per run and a summary, from the store (what every worker writes). */
export function storeStatus(
  runs: readonly SweepRun[],
  store: RunStore,
): { states: RunState[]; text: string } {
  const states = runs.map((r) => store.state(r.experiment));
  const count = (s: RunState['state']) => states.filter((x) => x.state === s).length;
  const active = states.filter((s) => s.state === 'running');
  // ETA: the epochs left, at the pace of the epochs seen, spread over the runs now active.
  const paces = states.flatMap((s) => (s.lastEpochSeconds !== undefined ? [s.lastEpochSeconds] : []));
  const pace = paces.length > 0 ? paces.reduce((a, b) => a + b, 0) / paces.length : Number.NaN;
  const left = states.reduce(
    (a, s) => a + (s.state === 'done' ? 0 : Math.max(0, s.epochsTotal - s.epochsDone)),
    0,
  );
  const eta = (pace * left) / Math.max(1, active.length);
  const lines = states.map((s) => {
    const prog = `${s.epochsDone}/${s.epochsTotal} epochs`;
    const extra =
      s.state === 'done'
        ? `test top-1 ${s.results!.testTop1.toFixed(2)}%`
        : s.state === 'running'
          ? `${s.holder}`
          : s.state === 'conflict'
            ? 'its folder holds another config'
            : '';
    return `${s.name.padEnd(Math.max(...runs.map((r) => r.name.length)))}  ${s.state.padEnd(8)} ${prog.padEnd(14)} ${extra}`;
  });
  const head = `${runs.length} runs in ${store.description}: ${count('done')} done, ${active.length} running, ${count('partial')} interrupted (resumable), ${count('absent')} waiting${count('conflict') ? `, ${count('conflict')} in conflict` : ''}${Number.isFinite(eta) && left > 0 ? `; about ${formatDuration(eta)} left` : ''}`;
  return { states, text: [head, ...lines].join('\n') };
}

export function formatDuration(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** Mean and sample standard deviation. */
function meanSd(xs: readonly number[]): { m: number; sd: number } {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(xs.length - 1, 1));
  return { m, sd };
}

/**
 * The comparison table of a sweep's finished runs: one row per experiment label and non-seed axis
 * values, mean ± sd of test top-1 over seeds, and the gain over the baseline row paired by seed
 * (the mean over seeds of row − baseline of the same seed), as in RepDistiller's tables.
 */
export function sweepTable(
  runs: readonly SweepRun[],
  store: RunStore,
  opts: { baseline?: string } = {},
): string {
  // A single experiment's label ('run') names nothing.
  const single = runs.every((r) => r.label === runs[0]?.label);
  const rowKey = (r: SweepRun) =>
    [
      ...(single ? [] : [r.label]),
      ...Object.entries(r.values)
        .filter(([k]) => k !== 'seed')
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`),
    ].join(' ') || r.label;
  const rows = new Map<string, SweepRun[]>();
  for (const r of runs) rows.set(rowKey(r), [...(rows.get(rowKey(r)) ?? []), r]);
  const seeds = [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b);
  const results = new Map(runs.map((r) => [r.name, store.finished(r.experiment)]));
  const baseKey =
    opts.baseline !== undefined
      ? [...rows.keys()].find((k) => k === opts.baseline || k.split(' ')[0] === opts.baseline)
      : [...rows.keys()][0];
  if (opts.baseline !== undefined && baseKey === undefined)
    throw new RetortError(`sweep report: no row '${opts.baseline}' (rows: ${[...rows.keys()].join('; ')})`);
  const bySeed = (rs: readonly SweepRun[]) =>
    new Map(
      rs.flatMap((r) => {
        const x = results.get(r.name);
        return x ? [[r.seed, x.testTop1] as const] : [];
      }),
    );
  const base = baseKey !== undefined ? bySeed(rows.get(baseKey)!) : new Map<number, number>();
  const lines = [
    `| run | test top-1 mean ± sd | Δ vs ${baseKey ?? '–'} (paired) | seeds | per seed (${seeds.join(', ')}) | train time per run |`,
    '| --- | ---: | ---: | ---: | --- | ---: |',
  ];
  for (const [key, rs] of rows) {
    const got = bySeed(rs);
    const done = rs.flatMap((r) => {
      const x = results.get(r.name);
      return x ? [x] : [];
    });
    if (done.length === 0) {
      lines.push(`| ${key} | not finished | | 0 | | |`);
      continue;
    }
    const { m, sd } = meanSd(done.map((d) => d.testTop1));
    const pairs = [...got].flatMap(([s, v]) => (base.has(s) ? [v - base.get(s)!] : []));
    const delta =
      key === baseKey || pairs.length === 0
        ? ''
        : `${meanSd(pairs).m >= 0 ? '+' : ''}${meanSd(pairs).m.toFixed(2)}`;
    const per = seeds.map((s) => (got.has(s) ? got.get(s)!.toFixed(2) : '–')).join(', ');
    const secs = meanSd(done.map((d) => d.trainSeconds)).m;
    lines.push(
      `| ${key} | ${m.toFixed(2)}${done.length > 1 ? ` ± ${sd.toFixed(2)}` : ''} | ${delta} | ${done.length} | ${per} | ${secs.toFixed(0)} s |`,
    );
  }
  return lines.join('\n');
}

export interface SweepOptions {
  /** Worker processes here (default 1); ignored with `queue`. */
  local?: number;
  /** Redis address: enqueue the jobs on BullMQ for `retort worker`s instead of running them here. */
  queue?: string;
  queueName?: string;
  /** The run store's folder (default 'runs'). */
  store?: string;
  threads?: number;
  /** Shard jobs per missing teacher cache (default: the local workers, or 2 with a queue). */
  teacherShards?: number;
  /** Folder that a grid object's relative paths are relative to (default: the working directory). */
  baseDir?: string;
  log?: (line: string) => void;
  onProgress?: (id: string, p: JobProgress) => void;
  signal?: AbortSignal;
}

export interface SweepHandle {
  runs: SweepRun[];
  jobs: SweepJob[];
  store: RunStore;
  /** What ran here (local), or what was enqueued (queue). */
  local?: SweepSummary;
  submitted?: import('./sweep-queue.js').SubmitResult;
  /** The store's view of every run now. */
  status(): { states: RunState[]; text: string };
  /** The comparison table (markdown) of the finished runs. */
  table(opts?: { baseline?: string }): string;
}

/** Runs (or enqueues) a grid; the library's `retort sweep`. */
export async function sweep(grid: SweepGrid | string, opts: SweepOptions = {}): Promise<SweepHandle> {
  const { expandGrid } = await import('./sweep-grid.js');
  const { openStore } = await import('./sweep-store.js');
  const runs = expandGrid(grid, { ...(opts.baseDir !== undefined ? { baseDir: opts.baseDir } : {}) });
  const store = openStore(opts.store ?? 'runs');
  const workers = opts.local ?? 1;
  const jobs = await planJobs(runs, store, {
    teacherShards: opts.teacherShards ?? (opts.queue ? 2 : workers),
    ...(opts.log ? { log: opts.log } : {}),
  });
  const handle: SweepHandle = {
    runs,
    jobs,
    store,
    status: () => storeStatus(runs, store),
    table: (o) => sweepTable(runs, store, o),
  };
  if (opts.queue !== undefined) {
    const { submitJobs } = await import('./sweep-queue.js');
    handle.submitted = await submitJobs(jobs, opts.queue, store.runsRoot, {
      ...(opts.queueName !== undefined ? { queueName: opts.queueName } : {}),
    });
    return handle;
  }
  handle.local = await runLocal(jobs, store, {
    workers,
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return handle;
}
