/**
 * One unit of a sweep's work: train (or resume) one run, compute one shard of a teacher cache, or
 * merge the shards. A job is plain JSON (it travels through Redis), carries the resolved
 * experiment rather than a file path (a worker on another machine may not have the grid's files),
 * and is idempotent: a finished run, or a cache that exists, is never redone, and an interrupted
 * run resumes from its last checkpoint, so a job handed to a second worker after the first died
 * ends exactly as an uninterrupted run would.
 *
 * Each job runs in its own child process (spawnJob): the process that talks to the queue keeps its
 * event loop free (its job lock is renewed on time however long a training step blocks), a job
 * that crashes or leaks cannot take the worker down, and a worker killed outright takes its child
 * with it (the child exits when its IPC channel closes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Experiment } from '../config/experiment.js';
import { RetortError } from '../util/errors.js';
import { epochsOf, type RunStore } from './sweep-store.js';

interface JobBase {
  /** Unique and stable: the run name, or teacher-<key>[-<i>of<n>]. The queue's job id. */
  id: string;
  /** Where the experiment came from (error messages). */
  where: string;
  experiment: Experiment;
}

export type SweepJob =
  | (JobBase & {
      kind: 'run';
      /** The teacher cache this run reads, when the sweep computes it first (teacher-<key>). */
      cacheKey?: string;
    })
  | (JobBase & { kind: 'teacher-shard'; cacheKey: string; shard: number; shards: number })
  | (JobBase & { kind: 'teacher-merge'; cacheKey: string; shards: number });

export interface JobOutcome {
  id: string;
  kind: SweepJob['kind'];
  /** Nothing was computed: the run had finished, or the cache existed. */
  skipped: boolean;
  /** Run jobs: whether it continued an interrupted run. */
  resumed?: boolean;
  testTop1?: number;
  seconds: number;
}

/** Progress a job reports after every epoch. */
export interface JobProgress {
  stage: string;
  /** Epochs finished in all (resumed ones included) and planned in all. */
  done: number;
  total: number;
  seconds: number;
  loss: number;
  top1?: number;
}

/** Id of the merge job of cache `key` (the run jobs wait for it). */
export const mergeJobId = (key: string) => `teacher-${key}`;

/** Where a store keeps teacher caches (runExperiment's default cacheDir under its runs root). */
export function cachePath(store: RunStore, key: string): string {
  return join(store.runsRoot, '.cache', 'teacher', `${key}.ckpt`);
}

export interface ExecuteOptions {
  log: (line: string) => void;
  onProgress?: (p: JobProgress) => void;
  /**
   * The job was handed over by a queue, which guarantees one holder per job: a run lock left by a
   * worker on another host (whose pid means nothing here) is then the dead worker's and is removed.
   */
  queueOwned?: boolean;
  /** How long to wait for a lock held by a live process on this host before failing (ms). */
  lockWaitMs?: number;
}

/** Runs `job` in this process against `store`. */
export async function executeJob(job: SweepJob, store: RunStore, opts: ExecuteOptions): Promise<JobOutcome> {
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  const base = { id: job.id, kind: job.kind };
  if (job.kind === 'teacher-shard' || job.kind === 'teacher-merge') {
    const { mergeTeacherCache, runTeacherShard } = await import('./teacher-shards.js');
    if (existsSync(cachePath(store, job.cacheKey))) return { ...base, skipped: true, seconds: 0 };
    const where = `${job.where} (${job.id})`;
    const o = { runsRoot: store.runsRoot };
    if (job.kind === 'teacher-shard') await runTeacherShard(job.experiment, where, job.shard, job.shards, o);
    else await mergeTeacherCache(job.experiment, where, job.shards, o);
    return { ...base, skipped: false, seconds: seconds() };
  }
  const exp = job.experiment;
  await store.pull(exp.name);
  if (store.finished(exp)) return { ...base, skipped: true, seconds: 0 };
  let st = store.state(exp);
  const dir = join(store.runsRoot, exp.name);
  if (st.state === 'conflict')
    throw new RetortError(
      `${job.where}: run folder ${dir} holds a run of another config; remove it or rename the sweep`,
      { file: join(dir, 'config.json') },
    );
  const lockPath = join(dir, 'lock');
  const deadline = Date.now() + (opts.lockWaitMs ?? 60_000);
  while (st.state === 'running') {
    const holder = JSON.parse(readFileSync(lockPath, 'utf8')) as { pid: number; host: string };
    if (holder.host !== hostname() && opts.queueOwned) {
      opts.log(
        `${exp.name}: the queue handed this run over from ${holder.host} (pid ${holder.pid}), whose worker stopped; removing its lock`,
      );
      rmSync(lockPath, { force: true });
    } else if (Date.now() > deadline)
      throw new RetortError(`${job.where}: run folder ${dir} is still locked by ${st.holder}`, {
        file: lockPath,
      });
    // A killed worker's child on this host notices its parent's death at its next event-loop turn.
    else await new Promise((r) => setTimeout(r, 500));
    st = store.state(exp);
  }
  const resume = st.state === 'partial';
  if (resume) opts.log(`${exp.name}: resuming (${st.epochsDone} of ${st.epochsTotal} epochs done)`);
  const { runExperiment } = await import('./experiment.js');
  const total = epochsOf(exp);
  let done = resume ? st.epochsDone : 0;
  const r = await runExperiment(exp, job.where, {
    runsRoot: store.runsRoot,
    resume,
    log: opts.log,
    onEpoch: (rec, stage) => {
      done++;
      opts.onProgress?.({
        stage,
        done,
        total: Math.max(total, done),
        seconds: rec.seconds,
        loss: rec.trainLoss,
        ...(rec.valTop1 !== undefined ? { top1: rec.valTop1 } : {}),
      });
      void store.push(exp.name);
    },
  });
  await store.push(exp.name);
  return { ...base, skipped: false, resumed: resume, testTop1: r.testTop1, seconds: seconds() };
}

/** A job's child process died without reporting (a signal, or its worker went away). */
export class JobInterrupted extends Error {}

/** The module the child process runs, next to this one (.ts in the sources, .js when built). */
function childEntry(): { file: string; nodeArgs: string[] } {
  const self = fileURLToPath(import.meta.url);
  const ts = self.endsWith('.ts');
  return {
    file: join(self, '..', `sweep-child.${ts ? 'ts' : 'js'}`),
    // The sources need the TypeScript loader (by its resolved address: a worker's working folder
    // may be anywhere) and the workspace's source condition.
    nodeArgs: ts ? ['--conditions=retort-source', '--import', import.meta.resolve('tsx')] : [],
  };
}

export interface SpawnOptions {
  /** The store as the child opens it (a folder path). */
  store: string;
  /** OpenMP threads of the child (RETORT_NUM_THREADS); 0 leaves the default. */
  threads: number;
  /** Receives the child's log lines. */
  log: (line: string) => void;
  onProgress?: (p: JobProgress) => void;
  queueOwned?: boolean;
  /** Called with the child once started (the caller may kill it). */
  onChild?: (child: ChildProcess) => void;
}

/** Runs `job` in a child process; rejects with its error, or JobInterrupted when it died. */
export function spawnJob(job: SweepJob, opts: SpawnOptions): Promise<JobOutcome> {
  const { file, nodeArgs } = childEntry();
  return new Promise((resolveJob, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, file], {
      env: { ...process.env, ...(opts.threads > 0 ? { RETORT_NUM_THREADS: String(opts.threads) } : {}) },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    opts.onChild?.(child);
    let outcome: JobOutcome | undefined;
    let failure: string | undefined;
    let tail = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const lines = (tail + chunk).split('\n');
      tail = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) opts.log(l);
    });
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'progress') opts.onProgress?.(m.progress);
      else if (m.type === 'done') outcome = m.outcome;
      else if (m.type === 'error') failure = m.message;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (tail.trim()) opts.log(tail);
      if (outcome && code === 0) resolveJob(outcome);
      else if (failure !== undefined) reject(new RetortError(failure));
      else
        reject(
          new JobInterrupted(
            `job ${job.id}: its process ended (${signal ?? `exit code ${code}`}) before finishing`,
          ),
        );
    });
    child.send({ job, store: opts.store, queueOwned: opts.queueOwned ?? false } satisfies ChildStart);
  });
}

/** Parent to child: the one message. */
export interface ChildStart {
  job: SweepJob;
  store: string;
  queueOwned: boolean;
}

/** Child to parent. */
export type ChildMessage =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'done'; outcome: JobOutcome }
  | { type: 'error'; message: string };
