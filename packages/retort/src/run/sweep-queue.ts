/**
 * A sweep through BullMQ on Redis: `submitJobs` enqueues, `runWorker` takes jobs on any machine that
 * sees the run store, `queueStatus` reads the queue's counts and the active jobs' progress.
 *
 * - Job id = run name (or the cache's teacher-<key>...), so submitting a grid again adds nothing.
 * - A teacher cache is a flow: the merge job is the parent of its shard jobs (BullMQ runs a parent
 *   once all its children completed). A run that needs a cache still being computed puts itself
 *   back for a few seconds (moveToDelayed) rather than holding its worker.
 * - Priorities: cache jobs before runs (lower number first in BullMQ).
 * - A worker that dies (SIGKILL, a lost machine) stops renewing its job lock; after `lockSeconds`
 *   BullMQ's stalled-job check puts the job back and another worker resumes the run from its last
 *   epoch's checkpoint in the store. `maxStalledCount` is raised so that a few lost workers never
 *   fail a job; a job that fails with an error is retried `attempts` times in all.
 *
 * bullmq and ioredis are optional peers of retort-kd: loaded here only, when a queue is used.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import { RetortError } from '../util/errors.js';
import {
  cachePath,
  type JobOutcome,
  type JobProgress,
  mergeJobId,
  type SweepJob,
  spawnJob,
} from './sweep-job.js';
import { openStore } from './sweep-store.js';

export const DEFAULT_QUEUE = 'retort';

/** Data of a queued job: the job and the store the submitter named (a worker may override it). */
type QueuedJob = SweepJob & { store: string };

async function bull() {
  try {
    return await import('bullmq');
  } catch (e) {
    throw new RetortError(
      `--queue needs the npm packages bullmq and ioredis beside retort-kd (npm install bullmq ioredis): ${(e as Error).message}`,
    );
  }
}

/** Opens the queue `name` at `url` for `fn`, and closes it whatever `fn` does. */
async function withQueue<T>(url: string, name: string, fn: (queue: Queue) => Promise<T>): Promise<T> {
  const { Queue } = await bull();
  const queue = new Queue(name, { connection: connection(url) });
  try {
    return await fn(queue);
  } finally {
    await queue.close();
  }
}

function connection(url: string) {
  if (!/^rediss?:\/\//.test(url))
    throw new RetortError(`--queue ${url}: give a Redis address such as redis://host:6379`);
  // BullMQ's workers block on Redis; ioredis must not give up on those commands.
  return { url, maxRetriesPerRequest: null };
}

export interface SubmitResult {
  added: string[];
  /** Already in the queue (waiting, active, or finished): left as they are. */
  existing: string[];
  /** Failed earlier: started again. */
  retried: string[];
}

/** Enqueues `jobs` (store: the run store's folder as workers see it). */
export async function submitJobs(
  jobs: readonly SweepJob[],
  url: string,
  store: string,
  opts: { queueName?: string; attempts?: number } = {},
): Promise<SubmitResult> {
  const { Queue, FlowProducer } = await bull();
  const name = opts.queueName ?? DEFAULT_QUEUE;
  const queue = new Queue(name, { connection: connection(url) });
  const flows = new FlowProducer({ connection: connection(url) });
  const out: SubmitResult = { added: [], existing: [], retried: [] };
  const jobOpts = (id: string, priority: number) => ({
    jobId: id,
    priority,
    attempts: opts.attempts ?? 3,
    backoff: { type: 'fixed', delay: 5000 },
    removeOnComplete: false,
    removeOnFail: false,
  });
  try {
    const known = async (id: string): Promise<boolean> => {
      const j = await queue.getJob(id);
      if (!j) return false;
      if ((await j.getState()) === 'failed') {
        await j.retry();
        out.retried.push(id);
      } else out.existing.push(id);
      return true;
    };
    for (const merge of jobs.filter((j) => j.kind === 'teacher-merge')) {
      if (await known(merge.id)) continue;
      const shards = jobs.filter((j) => j.kind === 'teacher-shard' && j.cacheKey === merge.cacheKey);
      await flows.add({
        name: merge.kind,
        queueName: name,
        data: { ...merge, store } satisfies QueuedJob,
        opts: jobOpts(merge.id, 1),
        children: shards.map((s) => ({
          name: s.kind,
          queueName: name,
          data: { ...s, store } satisfies QueuedJob,
          opts: jobOpts(s.id, 1),
        })),
      });
      out.added.push(merge.id, ...shards.map((s) => s.id));
    }
    for (const job of jobs.filter((j) => j.kind === 'run')) {
      if (await known(job.id)) continue;
      await queue.add(job.kind, { ...job, store } satisfies QueuedJob, jobOpts(job.id, 10));
      out.added.push(job.id);
    }
  } finally {
    await flows.close();
    await queue.close();
  }
  return out;
}

export interface WorkerOptions {
  url: string;
  queueName?: string;
  /** Jobs at once in this worker (each in its own process). */
  concurrency: number;
  /** OpenMP threads per job process (0: the default). */
  threads: number;
  /** The run store as this machine sees it (default: the path the submitter gave). */
  store?: string;
  /** Seconds without a lock renewal after which a job counts as stalled (its worker gone). */
  lockSeconds?: number;
  /** Stop once the queue has nothing left to run (waiting, delayed, active). */
  untilEmpty?: boolean;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Takes jobs until stopped (the signal) or, with untilEmpty, until the queue is empty. */
export async function runWorker(opts: WorkerOptions): Promise<{ done: JobOutcome[]; failed: string[] }> {
  const { Queue, Worker, DelayedError } = await bull();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const name = opts.queueName ?? DEFAULT_QUEUE;
  const queue = new Queue(name, { connection: connection(opts.url) });
  const lockMs = Math.round((opts.lockSeconds ?? 60) * 1000);
  const done: JobOutcome[] = [];
  const failed: string[] = [];
  const me = `${hostname()}:${process.pid}`;
  const worker = new Worker(
    name,
    async (job, token) => {
      const data = job.data as QueuedJob;
      const storePath = opts.store ?? data.store;
      const store = openStore(storePath);
      if (
        data.kind === 'run' &&
        data.cacheKey !== undefined &&
        !existsSync(cachePath(store, data.cacheKey))
      ) {
        const merge = await queue.getJob(mergeJobId(data.cacheKey));
        const state = merge ? await merge.getState() : 'unknown';
        // Wait while the cache is being made; after a failure (or without its job) the run makes it.
        if (state !== 'failed' && state !== 'completed' && state !== 'unknown') {
          await job.moveToDelayed(Date.now() + 3000, token);
          throw new DelayedError();
        }
      }
      log(`[${job.id}] start on ${me}${job.attemptsStarted > 1 ? ` (attempt ${job.attemptsStarted})` : ''}`);
      const outcome = await spawnJob(data, {
        store: storePath,
        threads: opts.threads,
        queueOwned: true,
        log: (l) => log(`[${job.id}] ${l}`),
        onProgress: (p: JobProgress) => void job.updateProgress({ ...p, worker: me }),
      });
      log(`[${job.id}] ${outcome.skipped ? 'already done' : `done in ${outcome.seconds.toFixed(1)} s`}`);
      return outcome;
    },
    {
      connection: connection(opts.url),
      concurrency: opts.concurrency,
      lockDuration: lockMs,
      stalledInterval: Math.max(1000, Math.round(lockMs / 2)),
      maxStalledCount: 100,
    },
  );
  worker.on('completed', (_job, r: JobOutcome) => done.push(r));
  worker.on('failed', (job, e) => {
    if (job) {
      failed.push(job.id ?? '?');
      log(`[${job.id}] failed (attempt ${job.attemptsMade}): ${e.message}`);
    }
  });
  worker.on('error', (e) => log(`worker: ${e.message}`));
  log(
    `worker ${me}: queue ${name} at ${opts.url}, ${opts.concurrency} job(s) at a time, ${opts.threads || 'default'} thread(s) each`,
  );
  try {
    await new Promise<void>((stop) => {
      opts.signal?.addEventListener('abort', () => stop(), { once: true });
      if (opts.signal?.aborted) stop();
      if (opts.untilEmpty) {
        const poll = setInterval(() => {
          void queue
            .getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children')
            .then((c) => {
              if (Object.values(c).every((n) => n === 0)) {
                clearInterval(poll);
                stop();
              }
            })
            .catch(() => {});
        }, 1000);
        opts.signal?.addEventListener('abort', () => clearInterval(poll), { once: true });
      }
    });
  } finally {
    await worker.close();
    await queue.close();
  }
  return { done, failed };
}

export interface QueueStatus {
  counts: Record<string, number>;
  active: { id: string; progress: unknown }[];
  failed: { id: string; reason: string }[];
}

/** The queue's job counts, its active jobs with their progress, and its failed jobs' reasons. */
export async function queueStatus(url: string, queueName = DEFAULT_QUEUE): Promise<QueueStatus> {
  return withQueue(url, queueName, async (queue) => {
    const counts = await queue.getJobCounts(
      'waiting',
      'prioritized',
      'waiting-children',
      'delayed',
      'active',
      'completed',
      'failed',
    );
    const active = (await queue.getActive()).map((j) => ({ id: j.id ?? '?', progress: j.progress }));
    const failed = (await queue.getFailed()).map((j) => ({ id: j.id ?? '?', reason: j.failedReason }));
    return { counts, active, failed };
  });
}

/** Where each of `ids` is in the queue: BullMQ's state ('completed', 'failed', 'active', ..., 'unknown' when absent) and, for a failed one, why. */
export async function jobStates(
  url: string,
  ids: readonly string[],
  queueName = DEFAULT_QUEUE,
): Promise<Map<string, { state: string; reason?: string }>> {
  return withQueue(url, queueName, async (queue) => {
    const out = new Map<string, { state: string; reason?: string }>();
    for (const id of ids) {
      const job = await queue.getJob(id);
      if (!job) {
        out.set(id, { state: 'unknown' });
        continue;
      }
      const state = await job.getState();
      out.set(id, state === 'failed' ? { state, reason: job.failedReason } : { state });
    }
    return out;
  });
}

/**
 * Takes back those of `ids` that no worker has started (waiting, prioritized or delayed): a stopped
 * search withdraws its batch, so workers do not go on training candidates nobody waits for. Jobs a
 * worker is running are left to finish (their runs land in the store, where a resumed search reuses
 * them). Returns the ids removed and the ids left running.
 */
export async function withdrawJobs(
  url: string,
  ids: readonly string[],
  queueName = DEFAULT_QUEUE,
): Promise<{ removed: string[]; running: string[] }> {
  return withQueue(url, queueName, async (queue) => {
    const removed: string[] = [];
    const running: string[] = [];
    for (const id of ids) {
      const job = await queue.getJob(id);
      if (!job) continue;
      const state = await job.getState();
      if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
        try {
          await job.remove();
          removed.push(id);
        } catch {
          // Taken by a worker between the two calls: it is running now.
          running.push(id);
        }
      } else if (state === 'active') running.push(id);
    }
    return { removed, running };
  });
}
