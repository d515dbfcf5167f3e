/**
 * Shared by the accuracy benchmarks (bench/accuracy.ts, bench/zoo.ts): run an experiment file with
 * overrides, reusing a finished run whose resolved config is identical, and summary statistics.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadExperiment } from '../../packages/retort/src/config/load.js';
import { type RunResults, runExperiment } from '../../packages/retort/src/train/experiment.js';

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
