/**
 * `node --import tsx packages/backend-native/test/fuzz/run.ts [--n 10000] [--seed 1] [--kernels a,b]
 * [--jobs min(4, cores)] [--timeout-ms 10000] [--out FILE] [--repro Kernel:i]`: differential fuzzing of every
 * native kernel against tfjs's cpu backend. Each case (kernels.ts) runs once on `cpu` and once on
 * `native` with the same inputs, in worker processes (worker.ts) so that a crash (a signal, an abort)
 * or a hang (no answer within --timeout-ms) is caught and attributed to its case, and the run goes
 * on with the next one; workers are replaced every PER_WORKER cases to bound memory. A case passes
 * when both backends agree within the kernel's tolerance, both throw, or (hostile cases) native
 * refuses with an error naming the kernel. Writes a markdown table (--out) and exits 1 on any
 * finding. Same seed, same cases: `--repro Kernel:i` prints one case, its inputs and both answers.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FUZZERS, HOSTILE_SHARE, TOLERANCE, toleranceOf } from './kernels.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Cases per worker process before a fresh one takes over. */
const PER_WORKER = 5000;
/** Message pairs (both threw) and other samples kept per kernel for the report. */
const SAMPLES = 3;

export interface Tally {
  kernel: string;
  calls: number;
  /** Calls that ran natively (nativeCallCounts grew). */
  ran: number;
  /** Calls whose native run entered the addon (including ones the addon refused). */
  addon: number;
  both: number;
  refused: number;
  excused: number;
  findings: number;
  crashes: number;
  hangs: number;
  /** Largest |native - cpu| / max(1, max |cpu|) of the cases that passed. */
  maxErr: number;
  /** Worker time spent in this kernel's cases (both backends), seconds. */
  seconds: number;
  samples: { both: string[]; refused: string[]; excused: string[]; findings: string[] };
}

interface Unit {
  kernel: string;
  from: number;
  to: number;
}

function newTally(kernel: string): Tally {
  return {
    kernel,
    calls: 0,
    ran: 0,
    addon: 0,
    both: 0,
    refused: 0,
    excused: 0,
    findings: 0,
    crashes: 0,
    hangs: 0,
    maxErr: 0,
    seconds: 0,
    samples: { both: [], refused: [], excused: [], findings: [] },
  };
}

const keep = (list: string[], s: string, max = SAMPLES) => {
  if (list.length < max) list.push(s);
};

export interface FuzzOptions {
  seed?: number;
  jobs?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** Runs cases [0, n) of every kernel in `kernels`; one tally per kernel. */
export async function fuzzKernels(
  kernels: readonly string[],
  n: number,
  opts: FuzzOptions = {},
): Promise<Map<string, Tally>> {
  const seed = opts.seed ?? 1;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const log = opts.log ?? (() => {});
  const tallies = new Map(kernels.map((k) => [k, newTally(k)]));
  for (const k of kernels)
    if (!FUZZERS.some((f) => f.name === k))
      throw new Error(`unknown kernel '${k}' (known: ${FUZZERS.map((f) => f.name).join(', ')})`);
  const queue: Unit[] = [];
  for (const kernel of kernels)
    for (let from = 0; from < n; from += PER_WORKER)
      queue.push({ kernel, from, to: Math.min(n, from + PER_WORKER) });

  // One worker: takes units worth about PER_WORKER cases, runs them, puts back what a crash or a
  // hang left undone (minus the culprit).
  const runWorker = (units: Unit[]) =>
    new Promise<void>((done) => {
      const child = spawn(
        process.execPath,
        ['--expose-gc', '--import', 'tsx', join(here, 'worker.ts'), String(seed), JSON.stringify(units)],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RETORT_QUIET: '1' } },
      );
      let ui = 0;
      let next = units[0]!.from;
      let buf = '';
      let err = '';
      let finished = false;
      let settled = false;
      const advance = (i: number) => {
        next = i + 1;
        while (ui < units.length && next >= units[ui]!.to) {
          ui++;
          next = units[ui]?.from ?? 0;
        }
      };
      const fail = (kind: 'crash' | 'hang', detail: string) => {
        if (settled) return;
        settled = true;
        const u = units[ui];
        if (u !== undefined) {
          const t = tallies.get(u.kernel)!;
          t.calls++;
          if (kind === 'crash') t.crashes++;
          else t.hangs++;
          const line = `${kind} in case ${next} (seed ${seed}): ${detail}`;
          keep(t.samples.findings, line, 10);
          log(`${u.kernel}: ${line}`);
          const rest = [{ ...u, from: next + 1 }, ...units.slice(ui + 1)].filter((x) => x.from < x.to);
          queue.unshift(...rest);
        }
        done();
      };
      // The first case waits for the worker's start-up (tsx, tfjs, the addon): a longer grace.
      let timer = setTimeout(() => onHang(), timeoutMs + 30_000);
      const onHang = () => {
        child.kill('SIGKILL');
        fail('hang', `no answer in ${timeoutMs} ms`);
      };
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        buf += chunk;
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf('\n');
          if (line.startsWith('M ')) finished = true;
          if (!line.startsWith('C ')) continue;
          const [, kernel, i, cls, ran, addon, us, e] = line.split(' ', 8);
          const detailAt = line.indexOf(' "');
          const detail = detailAt >= 0 ? (JSON.parse(line.slice(detailAt + 1)) as string) : '';
          const t = tallies.get(kernel!)!;
          t.calls++;
          if (ran === '1') t.ran++;
          if (addon === '1') t.addon++;
          t.seconds += Number(us) / 1e6;
          const at = `case ${i}: ${detail}`;
          if (cls === 'ok') t.maxErr = Math.max(t.maxErr, Number(e));
          else if (cls === 'both') {
            t.both++;
            if (detail !== '') keep(t.samples.both, detail);
          } else if (cls === 'refused') {
            t.refused++;
            keep(t.samples.refused, at);
          } else if (cls === 'excused') {
            t.excused++;
            keep(t.samples.excused, at);
          } else {
            t.findings++;
            keep(t.samples.findings, `${cls} in ${at}`, 10);
            if (t.findings <= 3) log(`${kernel}: ${cls} in ${at}`);
          }
          advance(Number(i));
          clearTimeout(timer);
          timer = setTimeout(onHang, timeoutMs);
        }
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => {
        err = (err + c).slice(-2000);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (finished && code === 0) {
          settled = true;
          done();
        } else {
          // tfjs prints a banner on stderr; the lines after it are the crash's own.
          const tail = err
            .split('\n')
            .filter((l) => l.trim() !== '' && !l.startsWith('====') && !l.startsWith('Hi, looks like'))
            .slice(-3);
          fail('crash', `${signal ?? `exit ${code}`}${tail.length > 0 ? `: ${tail.join(' | ')}` : ''}`);
        }
      });
    });

  const lane = async () => {
    while (queue.length > 0) {
      const units: Unit[] = [];
      let cases = 0;
      while (queue.length > 0 && cases < PER_WORKER) {
        const u = queue.shift()!;
        const take = Math.min(u.to - u.from, PER_WORKER - cases);
        units.push({ kernel: u.kernel, from: u.from, to: u.from + take });
        if (u.from + take < u.to) queue.unshift({ ...u, from: u.from + take });
        cases += take;
      }
      await runWorker(units);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.jobs ?? 1) }, lane));
  return tallies;
}

/** Total findings, crashes and hangs of a run. */
export function failures(t: Tally): number {
  return t.findings + t.crashes + t.hangs;
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

export function table(
  tallies: readonly Tally[],
  meta: { command: string; addon: string; seconds: number },
): string {
  const head =
    '| kernel | calls | ran natively | fell back to JS | reached addon | both threw | refused by native | excused | findings | crashes | hangs | max err | tolerance | ms/call |';
  const rows = tallies.map(
    (t) =>
      `| ${t.kernel} | ${t.calls} | ${t.ran} | ${t.calls - t.ran} | ${t.addon} | ${t.both} | ${t.refused} | ${t.excused} | ${t.findings} | ${t.crashes} | ${t.hangs} | ${t.maxErr === 0 ? '0' : t.maxErr.toExponential(1)} | ${toleranceOf(t.kernel)} | ${((1000 * t.seconds) / Math.max(1, t.calls)).toFixed(2)} |`,
  );
  const total = tallies.reduce((a, t) => a + failures(t), 0);
  const loose = [...new Set(Object.values(TOLERANCE).map((v) => `${v.tol}: ${v.why}`))].map((w) => {
    const names = Object.entries(TOLERANCE)
      .filter(([, v]) => `${v.tol}: ${v.why}` === w)
      .map(([k]) => k);
    return `- ${names.join(', ')}: ${w}.`;
  });
  const section = (title: string, pick: (t: Tally) => string[]) => {
    const lines = tallies.flatMap((t) => pick(t).map((s) => `- ${t.kernel}: ${s.replaceAll('|', '\\|')}`));
    return lines.length === 0 ? [] : ['', title, '', ...lines];
  };
  return [
    '# Differential fuzzing of the native kernels against tfjs cpu',
    '',
    `Command: \`${meta.command}\` (${new Date().toISOString().slice(0, 10)}, ${cpuModel()}, addon ${meta.addon}; ${(meta.seconds / 60).toFixed(1)} min wall).`,
    '',
    `Every kernel the native backend registers gets its own seeded case generator (test/fuzz/kernels.ts). A case`,
    `is one \`engine().runKernel\` call, below the ops' own argument checks: mostly valid calls of varied rank and`,
    `size (size-1 and empty dims, broadcasting, strides, dilations, 'same'/'valid'/explicit padding, transposes,`,
    `negative axes, NaN, infinities and signed zeros in the data), and ${HOSTILE_SHARE * 100}% hostile ones (a dim, rank, dtype or`,
    `attribute replaced by a bad value: negative, zero, fractional, NaN, past int32, huge; inputs left out; indices`,
    'out of range; gradient shapes that disagree). Each case runs on `cpu` and then on `native` with the same',
    'values, in worker processes, so that a crash or a hang (> 10 s) is caught and attributed to its case (a',
    'crash from heap corruption can surface some cases after the call that corrupted the heap).',
    '',
    'A case passes when both answers agree, when both backends throw (any error counts as the same kind), or when',
    'native refuses a hostile case with an error naming the kernel while cpu returns something (cpu kernels do not',
    'check what the ops check, and read past their arrays: undefined becomes NaN). Agreement: same number of',
    'outputs, dtypes and shapes; NaN and each infinity at the same places; int outputs equal; float outputs with',
    'max |native - cpu| <= tolerance x max(1, max |cpu|) over the finite entries. The tolerance is 1e-5 except:',
    '',
    ...loose,
    '',
    '"ran natively": the native kernel computed the call (nativeCallCounts grew); "fell back to JS": it left the',
    'call to the cpu kernel (dtype, layout, activation or empty tensor it does not take, or the call threw before);',
    '"reached addon": the call entered the addon, also when the addon then refused it. "excused": the backends',
    'differ where cpu is no reference (each reason below). "max err": the largest error of the passing cases.',
    '',
    head,
    `|${head
      .split('|')
      .slice(1, -1)
      .map(() => '---')
      .join('|')}|`,
    ...rows,
    '',
    total === 0 ? 'No findings.' : `${total} findings (first 10 per kernel):`,
    ...section('Findings:', (t) => t.samples.findings),
    ...section('Excused differences (a sample):', (t) => t.samples.excused.slice(0, 1)),
    ...section('Refused by native, answered by cpu (a sample):', (t) => t.samples.refused.slice(0, 1)),
    ...section('Both threw (native | cpu messages, a sample):', (t) => t.samples.both.slice(0, 1)),
    '',
  ].join('\n');
}

function arg(argv: readonly string[], name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
}

async function repro(spec: string, seed: number): Promise<void> {
  const [kernel, i] = spec.split(':');
  const { drawCase } = await import('./kernels.js');
  const { describe, runCase } = await import('./worker.js');
  const f = FUZZERS.find((x) => x.name === kernel);
  if (f === undefined || i === undefined) throw new Error('--repro Kernel:caseIndex');
  const c = drawCase(f, seed, Number(i));
  const show = (v: ArrayLike<number>) => `[${Array.from(v).join(', ')}]`;
  process.stdout.write(`${describe(c)}\n`);
  for (const [k, t] of Object.entries(c.inputs)) process.stdout.write(`  ${k} = ${show(t.values)}\n`);
  const v = runCase(f.name, seed, Number(i));
  for (const [name, o] of [
    ['cpu', v.ref],
    ['native', v.got],
  ] as const) {
    if (!o.ok) process.stdout.write(`${name}: threw ${o.msg}\n`);
    else
      for (const out of o.outs)
        process.stdout.write(`${name}: [${out.shape}] ${out.dtype} ${show(out.values)}\n`);
  }
  process.stdout.write(`${v.cls}${v.ran ? ' (ran natively)' : ''}: ${v.detail}\n`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const n = Number(arg(argv, 'n', '10000'));
  const seed = Number(arg(argv, 'seed', '1'));
  const r = arg(argv, 'repro', '');
  if (r !== '') return repro(r, seed);
  const jobs = Number(arg(argv, 'jobs', String(Math.min(4, availableParallelism()))));
  const timeoutMs = Number(arg(argv, 'timeout-ms', '10000'));
  const names = arg(argv, 'kernels', FUZZERS.map((f) => f.name).join(',')).split(',');
  const out = arg(argv, 'out', '');
  const t0 = performance.now();
  const tallies = await fuzzKernels(names, n, {
    seed,
    jobs,
    timeoutMs,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  const list = [...tallies.values()];
  for (const t of list)
    process.stderr.write(
      `${t.kernel}: ${t.calls} calls, ${t.ran} native, ${t.both} both threw, ${t.refused} refused, ${t.excused} excused, ${t.findings} findings, ${t.crashes} crashes, ${t.hangs} hangs, ${t.seconds.toFixed(0)} s\n`,
    );
  const seconds = (performance.now() - t0) / 1000;
  if (out !== '') {
    // The addon this run's workers loaded: its level and build time.
    const { addonPath, nativeIsa } = await import('../../src/index.js');
    let built = '';
    try {
      built = `, built ${statSync(addonPath).mtime.toISOString().slice(0, 16).replace('T', ' ')}`;
    } catch {}
    const command = `node --import tsx packages/backend-native/test/fuzz/run.ts ${argv.join(' ')}`;
    writeFileSync(
      resolve(out),
      table(list, { command, addon: `${nativeIsa ?? 'not loaded'}${built}`, seconds }),
    );
  }
  const bad = list.reduce((a, t) => a + failures(t), 0);
  process.stderr.write(`${bad} findings in ${(seconds / 60).toFixed(1)} min\n`);
  if (bad > 0) process.exitCode = 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
