/**
 * Where a sweep's runs live: a run store shared by every worker. A run folder (config.json,
 * metrics.jsonl, checkpoints/, results.json) is the unit; a worker that dies leaves its last epoch's
 * checkpoint there, and whichever worker takes the job next resumes from it.
 *
 * The store is an interface so that an object store can follow the directory store: such a store
 * would pull a run folder into a local working folder before a job, and push it back after every
 * checkpoint and at the end (`pull` / `push`). The directory store (a local folder or a shared
 * mount such as NFS) is its own working folder, so both are no-ops there.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Experiment } from '../config/experiment.js';
import { RetortError } from '../util/errors.js';
import type { RunResults } from './experiment.js';

/** What the store knows of one run. */
export interface RunState {
  name: string;
  /**
   * done: results.json with this config; running: a live lock; partial: started, not finished,
   * no live lock (a dead worker's run, resumable); absent: nothing yet; conflict: the folder holds a
   * run of another config.
   */
  state: 'done' | 'running' | 'partial' | 'absent' | 'conflict';
  /** Epochs finished (metrics.jsonl records) and in all (the stages' sum), when known. */
  epochsDone: number;
  epochsTotal: number;
  /** Seconds of the last finished epoch (for an ETA). */
  lastEpochSeconds?: number;
  /** Who holds the lock (running). */
  holder?: string;
  results?: RunResults;
}

export interface RunStore {
  /** Shown in logs and status lines. */
  readonly description: string;
  /** The local folder where run folders are trained (the `runsRoot` of runExperiment). */
  readonly runsRoot: string;
  /** The results of `exp`'s run when it finished with exactly this config, else null. */
  finished(exp: Experiment): RunResults | null;
  state(exp: Experiment): RunState;
  /** Brings the run folder `name` into runsRoot before a job works on it (object stores). */
  pull(name: string): Promise<void>;
  /** Sends the run folder `name` back to the store (object stores: after checkpoints and at the end). */
  push(name: string): Promise<void>;
}

/** The exact bytes prepareRunDir writes to config.json. */
export function configText(exp: Experiment): string {
  return `${JSON.stringify(exp, null, 2)}\n`;
}

/** Epochs an experiment trains in all (its stages' sum); schemes may add their own. */
export function epochsOf(exp: Experiment): number {
  return exp.stages ? exp.stages.reduce((a, s) => a + s.epochs, 0) : exp.epochs;
}

/** A folder of run folders: a local disk, or a mount every worker sees at the same path. */
export class DirStore implements RunStore {
  readonly runsRoot: string;
  constructor(root: string) {
    this.runsRoot = resolve(root);
  }
  get description(): string {
    return this.runsRoot;
  }

  finished(exp: Experiment): RunResults | null {
    const dir = join(this.runsRoot, exp.name);
    const res = join(dir, 'results.json');
    if (!existsSync(res) || !existsSync(join(dir, 'config.json'))) return null;
    if (readFileSync(join(dir, 'config.json'), 'utf8') !== configText(exp)) return null;
    try {
      return JSON.parse(readFileSync(res, 'utf8')) as RunResults;
    } catch (e) {
      throw new RetortError(
        `${res}: unreadable results (${(e as Error).message}); remove the run folder to redo it`,
        {
          file: res,
        },
      );
    }
  }

  state(exp: Experiment): RunState {
    const dir = join(this.runsRoot, exp.name);
    const base = { name: exp.name, epochsDone: 0, epochsTotal: epochsOf(exp) };
    if (!existsSync(join(dir, 'config.json'))) return { ...base, state: 'absent' };
    if (readFileSync(join(dir, 'config.json'), 'utf8') !== configText(exp))
      return { ...base, state: 'conflict' };
    const metrics = readMetrics(dir);
    const progress = {
      ...base,
      epochsDone: metrics.length,
      ...(metrics.length > 0 ? { lastEpochSeconds: metrics.at(-1)!.seconds } : {}),
    };
    const results = this.finished(exp);
    if (results)
      return {
        ...progress,
        epochsDone: Math.max(progress.epochsDone, base.epochsTotal),
        state: 'done',
        results,
      };
    const holder = lockHolder(join(dir, 'lock'));
    return holder ? { ...progress, state: 'running', holder } : { ...progress, state: 'partial' };
  }

  async pull(_name: string): Promise<void> {}
  async push(_name: string): Promise<void> {}
}

/** The store a `--store` value names: a folder path (or a file:// address). */
export function openStore(spec: string): RunStore {
  if (spec.startsWith('file://')) return new DirStore(new URL(spec).pathname);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec))
    throw new RetortError(
      `run store '${spec}': only folders are stores today (a local path or a shared mount, or file://...)`,
    );
  return new DirStore(spec);
}

interface MetricLine {
  seconds: number;
}

/** Epoch records of a run folder (the stages' metrics.jsonl files together), tolerant of a torn last line. */
function readMetrics(dir: string): MetricLine[] {
  const files: string[] = [];
  if (existsSync(join(dir, 'metrics.jsonl'))) files.push(join(dir, 'metrics.jsonl'));
  // Multi-stage runs keep each stage's records in stages/<i>-<name>/.
  const stages = join(dir, 'stages');
  if (existsSync(stages))
    for (const d of readdirSync(stages, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name)))
      if (d.isDirectory() && existsSync(join(stages, d.name, 'metrics.jsonl')))
        files.push(join(stages, d.name, 'metrics.jsonl'));
  const out: MetricLine[] = [];
  for (const f of files)
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as Partial<MetricLine>;
        if (typeof r.seconds === 'number') out.push({ seconds: r.seconds });
      } catch {
        // a line being written
      }
    }
  return out;
}

/** "pid P on HOST" for a lock whose holder may be alive (any host but this one counts as alive). */
function lockHolder(path: string): string | null {
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as { pid?: number; host?: string };
    if (typeof v.pid !== 'number' || typeof v.host !== 'string') return null;
    if (v.host === hostname()) {
      try {
        process.kill(v.pid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EPERM') return null;
      }
    }
    return `pid ${v.pid} on ${v.host}`;
  } catch {
    return null;
  }
}
