/**
 * `npm run fuzz -- [--n 20000] [--targets png,idx,...] [--seed 1] [--timeout-ms 5000] [--out FILE]`:
 * mutation fuzzing of every reader and loader Retort has for the user's files (targets.ts), each
 * case a seeded mutation of a valid file (mutate.ts), run in worker processes (worker.ts) so that
 * a crash (a signal, an abort) or a hang (no answer within --timeout-ms) is caught and attributed
 * to its case, and the run goes on with the next one. A case passes when the reader returns or
 * throws a RetortError; anything else is a finding. Writes a markdown table (--out) and exits 1 on
 * any finding. Same seed, same cases.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { TARGETS } from './targets.js';

const here = dirname(fileURLToPath(import.meta.url));

interface Tally {
  target: string;
  cases: number;
  accepted: number;
  refused: number;
  foreign: string[];
  crashes: string[];
  hangs: string[];
  peakRssKiB: number;
  seconds: number;
}

function arg(argv: readonly string[], name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : def;
}

/** VmHWM (peak resident set) of a live process, in KiB, or 0. */
function peakOf(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * Cases per worker process. Node's zlib keeps about 8 KB of native memory per failed inflate even
 * after garbage collection (20,000 corrupt gunzipSync calls: +168 MiB RSS with a forced GC after
 * each), so one long-lived worker's RSS measures that creep, not what one file can make a reader
 * allocate; a fresh worker every 1,000 cases keeps the peak a per-file bound.
 */
const PER_WORKER = 1000;

/** Runs cases [0, n) of one target, restarting the worker after each crash or hang. */
export async function fuzzTarget(
  target: string,
  n: number,
  seed: number,
  timeoutMs: number,
  log: (l: string) => void = () => {},
): Promise<Tally> {
  const t: Tally = {
    target,
    cases: n,
    accepted: 0,
    refused: 0,
    foreign: [],
    crashes: [],
    hangs: [],
    peakRssKiB: 0,
    seconds: 0,
  };
  const t0 = performance.now();
  const work = mkdtempSync(join(tmpdir(), `retort-fuzz-${target}-`));
  let next = 0;
  try {
    while (next < n) {
      const from = next;
      const outcome = await new Promise<{ kind: 'done' | 'crash' | 'hang'; detail: string }>((done) => {
        const child = spawn(
          process.execPath,
          [
            '--expose-gc',
            '--import',
            'tsx',
            join(here, 'worker.ts'),
            target,
            String(seed),
            String(from),
            String(Math.min(n, from + PER_WORKER)),
            join(work, 'w'),
          ],
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RETORT_QUIET: '1' } },
        );
        let buf = '';
        let err = '';
        let finished = false;
        // The first case waits for the worker's start-up (tsx, tfjs): a longer grace.
        let timer = setTimeout(() => onHang(), timeoutMs + 30_000);
        const onHang = () => {
          t.peakRssKiB = Math.max(t.peakRssKiB, peakOf(child.pid!));
          child.kill('SIGKILL');
          done({ kind: 'hang', detail: `no answer in ${timeoutMs} ms` });
        };
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          buf += chunk;
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            nl = buf.indexOf('\n');
            const [kind, a, b, ...rest] = line.split(' ');
            if (kind === 'C') {
              const i = Number(a);
              next = i + 1;
              if (b === 'accepted') t.accepted++;
              else if (b === 'refused') t.refused++;
              else t.foreign.push(`case ${i}: ${JSON.parse(rest.join(' ')) as string}`);
              clearTimeout(timer);
              timer = setTimeout(onHang, timeoutMs);
            } else if (kind === 'M') {
              t.peakRssKiB = Math.max(t.peakRssKiB, Number(a));
              finished = true;
            }
          }
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (c: string) => {
          err = (err + c).slice(-2000);
        });
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          if (finished && code === 0) done({ kind: 'done', detail: '' });
          else
            done({
              kind: 'crash',
              detail: `${signal ?? `exit ${code}`}: ${err.trim().split('\n').slice(-3).join(' | ')}`,
            });
        });
      });
      if (outcome.kind === 'done') {
        next = Math.min(n, from + PER_WORKER);
        continue;
      }
      // The case after the last one answered is the culprit; the run goes on after it.
      const list = outcome.kind === 'hang' ? t.hangs : t.crashes;
      list.push(`case ${next}: ${outcome.detail}`);
      log(`${target}: case ${next}: ${outcome.kind} (${outcome.detail})`);
      next++;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  t.seconds = (performance.now() - t0) / 1000;
  return t;
}

export function table(tallies: readonly Tally[], n: number, seed: number, cpu: string): string {
  const head =
    '| target | cases | accepted | refused (RetortError) | other errors | crashes | hangs (> 5 s) | peak RSS MiB | seconds |';
  const rows = tallies.map(
    (t) =>
      `| ${t.target} | ${t.cases} | ${t.accepted} | ${t.refused} | ${t.foreign.length} | ${t.crashes.length} | ${t.hangs.length} | ${(t.peakRssKiB / 1024).toFixed(0)} | ${t.seconds.toFixed(0)} |`,
  );
  const findings = tallies.flatMap((t) =>
    [
      ...t.crashes.map((c) => `crash ${c}`),
      ...t.hangs.map((h) => `hang ${h}`),
      ...t.foreign.map((f) => `other error ${f}`),
    ]
      .slice(0, 10)
      .map((f) => `- ${t.target}: ${f}`),
  );
  return [
    '# Fuzzing the readers and loaders',
    '',
    `Command: \`npm run fuzz -- --n ${n} --seed ${seed}\` (${new Date().toISOString().slice(0, 10)}, ${cpu}, 2 cores).`,
    'Each case is a seeded mutation (bit flips, interesting bytes and 32-bit values, truncation, cut, duplicated',
    'and inserted chunks, special tokens for text) of a valid file, read the way Retort reads it. A case passes',
    'when the reader returns or refuses with its own RetortError naming the file; crashes (signals) and hangs are',
    'caught per case by running the cases in worker processes (a fresh one every 1,000 cases, garbage collected',
    'whenever RSS grew by 64 MiB). Peak RSS is the largest of any worker (start-up and tfjs included), so it',
    'bounds what one file makes a reader allocate.',
    '',
    head,
    `|${head
      .split('|')
      .slice(1, -1)
      .map(() => '---')
      .join('|')}|`,
    ...rows,
    '',
    findings.length === 0 ? 'No findings.' : ['Findings (first 10 per target):', '', ...findings].join('\n'),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const n = Number(arg(argv, 'n', '20000'));
  const seed = Number(arg(argv, 'seed', '1'));
  const timeoutMs = Number(arg(argv, 'timeout-ms', '5000'));
  const names = arg(argv, 'targets', TARGETS.map((t) => t.name).join(',')).split(',');
  const out = arg(argv, 'out', '');
  for (const name of names)
    if (!TARGETS.some((t) => t.name === name))
      throw new Error(`--targets: unknown '${name}' (known: ${TARGETS.map((t) => t.name).join(', ')})`);
  const tallies: Tally[] = [];
  for (const name of names) {
    const t = await fuzzTarget(name, n, seed, timeoutMs, (l) => process.stderr.write(`${l}\n`));
    process.stderr.write(
      `${name}: ${t.cases} cases, ${t.accepted} accepted, ${t.refused} refused, ${t.foreign.length} other errors, ${t.crashes.length} crashes, ${t.hangs.length} hangs, peak ${(t.peakRssKiB / 1024).toFixed(0)} MiB, ${t.seconds.toFixed(0)} s\n`,
    );
    tallies.push(t);
  }
  const md = table(tallies, n, seed, cpus()[0]?.model ?? 'unknown CPU');
  if (out !== '') writeFileAtomic(resolve(out), md);
  process.stdout.write(
    `${JSON.stringify(tallies.map((t) => ({ ...t, foreign: t.foreign.length, crashes: t.crashes.length, hangs: t.hangs.length })))}\n`,
  );
  const bad = tallies.some((t) => t.foreign.length + t.crashes.length + t.hangs.length > 0);
  if (bad) {
    for (const t of tallies)
      for (const f of [...t.crashes, ...t.hangs, ...t.foreign].slice(0, 5))
        process.stderr.write(`${t.target}: ${f}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
