/**
 * Shared by the accuracy benchmarks (bench/accuracy.ts, bench/zoo.ts): run an experiment file with
 * overrides, reusing a finished run whose resolved config is identical, and summary statistics.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadExperiment, type RunResults, runExperiment } from 'retort-kd';

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

const cli = resolve(dirname(fileURLToPath(import.meta.url)), '../../packages/retort/src/cli/main.ts');

/** One experiment in a child `retort train` with `threads` OpenMP threads; its log lines prefixed. */
function runChild(task: RunTask, runs: string, threads: number, name: string): Promise<void> {
  return new Promise((done, fail) => {
    const args = [
      '--conditions=retort-source',
      '--import',
      'tsx',
      cli,
      'train',
      task.file,
      ...task.sets.flatMap((x) => ['--set', x]),
    ];
    const child = spawn(process.execPath, [...args, '--runs', runs, '--force'], {
      env: { ...process.env, RETORT_NUM_THREADS: String(threads) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let tail = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      const lines = (tail + chunk).split('\n');
      tail = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) process.stderr.write(`[${name}] ${l}\n`);
    });
    child.on('error', fail);
    child.on('exit', (code) =>
      code === 0
        ? done()
        : fail(new Error(`run ${name} (${task.file}) exited with code ${code}; see its log above`)),
    );
  });
}

/**
 * Runs every task (reusing finished runs), `jobs` at a time. jobs 1 runs in this process; more run
 * in child processes with the cores split between them (RETORT_NUM_THREADS): tfjs's per-kernel
 * JS work is single-threaded, so two 1-thread trainings keep 2 cores busier than one 2-thread one.
 * Results come back in task order.
 */
export async function runMany(tasks: readonly RunTask[], runs: string, jobs: number): Promise<RunResults[]> {
  if (jobs <= 1) {
    const out: RunResults[] = [];
    for (const t of tasks) out.push(await runOrReuse(t.file, t.sets, runs));
    return out;
  }
  const threads = Math.max(1, Math.floor(availableParallelism() / jobs));
  const exps = tasks.map((t) => loadExperiment(t.file, t.sets));
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      if (finishedRun(runs, exps[i]!)) {
        console.error(`reusing finished run ${join(runs, exps[i]!.name)}`);
        continue;
      }
      await runChild(tasks[i]!, runs, threads, exps[i]!.name);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return exps.map((e, i) => {
    const r = finishedRun(runs, e);
    if (!r) throw new Error(`run ${e.name} (${tasks[i]!.file}) did not finish`);
    return r;
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
