/**
 * Shared by the accuracy benchmarks (bench/accuracy.ts, bench/zoo.ts, bench/schemes.ts): run an
 * experiment file with overrides, reusing a finished run whose resolved config is identical, many of
 * them through the sweep's local runner, and summary statistics.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  DirStore,
  loadExperiment,
  planJobs,
  type RunResults,
  runExperiment,
  runLocal,
  type SweepRun,
} from 'retort-kd';

/** The results of a finished run of exactly this experiment under `runs`, or null. */
export function finishedRun(runs: string, exp: { name: string }): RunResults | null {
  const dir = join(runs, exp.name);
  if (!existsSync(join(dir, 'results.json')) || !existsSync(join(dir, 'config.json'))) return null;
  if (readFileSync(join(dir, 'config.json'), 'utf8') !== `${JSON.stringify(exp, null, 2)}\n`) return null;
  return JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as RunResults;
}

/** Runs `file` with `sets` (key=value overrides) under `runs`, or reuses its finished run. */
export async function runOrReuse(file: string, sets: readonly string[], runs: string): Promise<RunResults> {
  const exp = loadExperiment(file, sets);
  const done = finishedRun(runs, exp);
  if (done) {
    console.error(`reusing finished run ${join(runs, exp.name)}`);
    return done;
  }
  return runExperiment(exp, file, { runsRoot: runs, force: true });
}

export interface RunTask {
  file: string;
  sets: readonly string[];
}

/**
 * Runs every task (reusing finished runs) through the sweep's local runner (`retort sweep
 * --local`): `jobs` worker processes, the cores split between them (tfjs's per-kernel JS work is
 * one thread per process, so two 1-thread trainings keep 2 cores busier than one 2-thread one); a
 * teacher cache the runs need is made first by `jobs` shard jobs. Results come back in task order.
 */
export async function runMany(tasks: readonly RunTask[], runs: string, jobs: number): Promise<RunResults[]> {
  const store = new DirStore(runs);
  const sweepRuns: SweepRun[] = tasks.map((t) => {
    const experiment = loadExperiment(t.file, t.sets);
    return {
      name: experiment.name,
      label: experiment.name,
      file: resolve(t.file),
      sets: [...t.sets],
      values: {},
      seed: experiment.seed,
      experiment,
    };
  });
  const reused = sweepRuns.filter((r) => store.finished(r.experiment) !== null).length;
  if (reused > 0) console.error(`reusing ${reused} finished run(s) under ${runs}`);
  const plan = await planJobs(sweepRuns, store, { teacherShards: Math.max(1, jobs) });
  const s = await runLocal(plan, store, { workers: Math.max(1, jobs) });
  if (s.failed.length > 0)
    throw new Error(`runs failed: ${s.failed.map((f) => `${f.id} (${f.message})`).join('; ')}`);
  return sweepRuns.map((r) => {
    const done = store.finished(r.experiment);
    if (!done) throw new Error(`run ${r.name} (${r.file}) did not finish`);
    return done;
  });
}

/** Mean and sample standard deviation. */
export function meanSd(xs: readonly number[]): { m: number; sd: number } {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(xs.length - 1, 1));
  return { m, sd };
}

/** `--name value` from argv, or the default. */
export function argOf(args: readonly string[], name: string, def: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : def;
}

/** The machine a figure was measured on, from lscpu: model name, family/model, CPU count. */
export function cpuLine(): string {
  const text = execFileSync('lscpu', { encoding: 'utf8' });
  const field = (k: string) => text.match(new RegExp(`^${k}:\\s*(.+)$`, 'm'))?.[1]?.trim() ?? '?';
  return `${field('Model name')} (family ${field('CPU family')} model ${field('Model')}), ${field('CPU\\(s\\)')} CPUs`;
}
