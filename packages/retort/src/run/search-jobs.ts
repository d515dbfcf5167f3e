/**
 * A search's candidates trained as sweep jobs: each batch of candidate experiments becomes run jobs
 * for the local worker processes (`runLocal`, `--local N`) or the BullMQ queue (`--queue`, taken by
 * `retort worker`s that see the same run store). A finished run is never redone (the store compares
 * its config), so a resumed search reuses every candidate that finished before it stopped.
 *
 * Every candidate of a search reads the same teacher cache (its key depends on the teacher and the
 * data, not the student), so it is planned once, with the first batch: shard jobs and a merge when
 * several workers can share the work, then every later run finds it.
 */
import type { Experiment } from '../config/experiment.js';
import { RetortError } from '../util/errors.js';
import type { RunResults } from './experiment.js';
import { planJobs, runLocal, threadsPer } from './sweep.js';
import type { SweepRun } from './sweep-grid.js';
import type { SweepJob } from './sweep-job.js';
import type { RunStore } from './sweep-store.js';

export interface CandidateJobsOptions {
  store: RunStore;
  /** The search's experiment file (error messages, and the jobs' `where`). */
  where: string;
  /** Local worker processes (default 1); ignored with `queue`. */
  local?: number;
  /** OpenMP threads per local worker (default: the cores split between them). */
  threads?: number;
  /** Redis address: enqueue on BullMQ and wait for `retort worker`s to finish the runs. */
  queue?: string;
  queueName?: string;
  /** How often the queue and the store are polled (ms, default 2000). */
  pollMs?: number;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface CandidateOutcome {
  results: RunResults | null;
  /** Why the run did not finish, when it did not. */
  error?: string;
}

/** Runs candidate experiments as sweep jobs, batch after batch. */
export class CandidateJobs {
  private cachePlanned = false;

  constructor(private readonly o: CandidateJobsOptions) {}

  /** Trains (or reuses) every experiment of one batch; one outcome per experiment, in order. */
  async run(exps: readonly Experiment[]): Promise<CandidateOutcome[]> {
    const o = this.o;
    const runs: SweepRun[] = exps.map((e) => ({
      name: e.name,
      label: e.name,
      file: o.where,
      sets: [],
      values: {},
      seed: e.seed,
      experiment: e,
    }));
    const jobs = await this.plan(runs);
    const failed = new Map<string, string>();
    if (jobs.length > 0) {
      if (o.queue !== undefined) await this.viaQueue(jobs, exps, failed);
      else {
        const workers = o.local ?? 1;
        const s = await runLocal(jobs, o.store, {
          workers,
          threads: o.threads ?? threadsPer(workers),
          log: o.log,
          ...(o.signal ? { signal: o.signal } : {}),
        });
        for (const f of s.failed) failed.set(f.id, f.message);
      }
    }
    return exps.map((e) => {
      const results = o.store.finished(e);
      if (results) return { results };
      return { results: null, error: failed.get(e.name) ?? 'the run did not finish' };
    });
  }

  /** Run jobs for the unfinished runs; the teacher cache's shard and merge jobs before the first batch. */
  private async plan(runs: readonly SweepRun[]): Promise<SweepJob[]> {
    const o = this.o;
    const pending = runs.filter((r) => o.store.finished(r.experiment) === null);
    if (pending.length === 0) return [];
    const workers = o.queue !== undefined ? 2 : (o.local ?? 1);
    // One worker gains nothing from shards: the run computes the cache itself, the same bytes.
    const shards = workers > 1 ? workers : 0;
    if (this.cachePlanned || shards === 0 || pending[0]!.experiment.teacher === undefined)
      return planJobs(pending, o.store, { teacherShards: 0 });
    this.cachePlanned = true;
    // Planning loads the data and the teacher; one candidate stands for all (same cache key).
    const first = await planJobs(pending.slice(0, 1), o.store, { teacherShards: shards, log: o.log });
    const key = first.find((j) => j.kind === 'run')?.cacheKey;
    const rest: SweepJob[] = pending.slice(1).map((r) => ({
      kind: 'run',
      id: r.name,
      where: r.file,
      experiment: r.experiment,
      ...(key !== undefined ? { cacheKey: key } : {}),
    }));
    return [...first, ...rest];
  }

  /** Enqueues the jobs and waits until every run finished in the store or failed in the queue. */
  private async viaQueue(
    jobs: readonly SweepJob[],
    exps: readonly Experiment[],
    failed: Map<string, string>,
  ): Promise<void> {
    const o = this.o;
    const { DEFAULT_QUEUE, jobStates, submitJobs, withdrawJobs } = await import('./sweep-queue.js');
    const queueName = o.queueName ?? DEFAULT_QUEUE;
    const r = await submitJobs(jobs, o.queue!, o.store.runsRoot, { queueName });
    o.log(
      `queue ${queueName}: ${r.added.length} job(s) added, ${r.existing.length} already there, ${r.retried.length} retried; waiting for retort worker --queue ${o.queue}`,
    );
    for (;;) {
      if (o.signal?.aborted) {
        // Stopped: the batch's jobs that no worker took leave the queue; running ones finish.
        const w = await withdrawJobs(
          o.queue!,
          jobs.map((j) => j.id),
          queueName,
        );
        o.log(
          `queue ${queueName}: stopped; ${w.removed.length} waiting job(s) withdrawn, ${w.running.length} running one(s) left to finish (--resume reuses their runs)`,
        );
        return;
      }
      const left = exps.filter((e) => o.store.finished(e) === null && !failed.has(e.name));
      if (left.length === 0) return;
      const states = await jobStates(
        o.queue!,
        left.map((e) => e.name),
        queueName,
      );
      for (const [id, s] of states) {
        if (s.state === 'failed') failed.set(id, s.reason ?? 'failed in the queue');
        // Completed yet not finished in this store: the worker wrote to a store this process does not see.
        else if (s.state === 'completed' && o.store.finished(exps.find((e) => e.name === id)!) === null)
          throw new RetortError(
            `${o.where}: queue job ${id} completed, but its run is not finished in ${o.store.description}; the workers must share this run store`,
          );
        else if (s.state === 'unknown') failed.set(id, 'not in the queue (removed?)');
      }
      await new Promise((done) => setTimeout(done, o.pollMs ?? 2000));
    }
  }
}

/**
 * The proxy accuracy of a finished candidate run: the last epoch's validation top-1 when the run
 * held out a validation split, else its test top-1.
 */
export function proxyAccuracy(r: RunResults): number {
  const last = r.epochs.at(-1);
  return last?.valSplit === 'validation' && last.valTop1 !== undefined ? last.valTop1 : r.testTop1;
}
