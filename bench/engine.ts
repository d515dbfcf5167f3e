/**
 * Engine benchmark: the KD tutorial's DeepNN and LightNN (batch 128, 32x32x3 random data) trained
 * (Adam 1e-3, softmax cross-entropy) and run for inference on the tfjs `native` backend, side by
 * side with PyTorch (bench/torch_engine.py) on the same machine.
 *
 *   npm run bench:engine                  3 interleaved rounds per model and mode (a few minutes)
 *   npm run bench:engine -- --quick       one short round, < 60 s; last line `deepnn-train-ratio <x>`
 *   npm run bench:engine -- --profile     top 15 kernels of one native training step of each model
 *   options: --rounds N  --steps N (native timed steps)  --warmup N  --batch N
 *            --adam tfjs|retort (default tfjs: tf.train.adam; retort: the fused native Adam)
 *
 * Rounds alternate native and PyTorch (one Python process per round, OMP_NUM_THREADS = the native
 * thread count, OMP_WAIT_POLICY unset) so both see the same machine state; each side's figure is the
 * median over rounds, PyTorch's the better of NCHW and channels_last per round (--quick: channels_last
 * only, the faster layout for all four cells here). Warm-up steps are not timed. Ratio = native img/s
 * / PyTorch img/s (higher = native faster). Progress goes to stderr, the table to stdout, and the same
 * figures to bench/out/engine.json. Without torch the native figures are still printed (exit 0).
 */
import { mkdirSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { describeCpu, nativeAvailable, nativeIsa, nativeKernelNames } from 'retort-kd-native';
import '@tensorflow/tfjs-layers';
import { writeFileAtomic } from 'retort-kd';
import {
  type AdamImpl,
  type Cell,
  MODEL_LABEL,
  type Mode,
  type ModelName,
  makeCell,
  profileTrainStep,
  timeSteps,
} from './lib/engine-native.js';
import {
  type Layout,
  pythonCandidates,
  runTorch,
  type TorchMeasurement,
  torchPython,
} from './lib/engine-torch.js';

interface Options {
  quick: boolean;
  profile: boolean;
  rounds: number;
  steps: number | null;
  warmup: number | null;
  batch: number;
  adam: AdamImpl;
}

const USAGE =
  'usage: bench/engine.ts [--quick | --profile] [--rounds N] [--steps N] [--warmup N] [--batch N] [--adam tfjs|retort]';

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    quick: false,
    profile: false,
    rounds: 3,
    steps: null,
    warmup: null,
    batch: 128,
    adam: 'tfjs',
  };
  let roundsSet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const int = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1)
        throw new Error(`${a} needs a positive integer, got '${argv[i]}'\n${USAGE}`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--profile') o.profile = true;
    else if (a === '--rounds') {
      o.rounds = int();
      roundsSet = true;
    } else if (a === '--steps') o.steps = int();
    else if (a === '--warmup') o.warmup = int();
    else if (a === '--batch') o.batch = int();
    else if (a === '--adam') {
      const v = argv[++i];
      if (v !== 'tfjs' && v !== 'retort')
        throw new Error(`--adam takes tfjs or retort, got '${v}'\n${USAGE}`);
      o.adam = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument '${a}'\n${USAGE}`);
  }
  if (o.quick && !roundsSet) o.rounds = 1;
  return o;
}

/** PyTorch warm-up and timed steps per cell, and its ms/step here (channels_last, 2 threads). */
const TORCH_PLAN: Record<
  ModelName,
  Record<Mode, { full: [number, number]; quick: [number, number]; ms: number }>
> = {
  deepnn: {
    train: { full: [1, 3], quick: [1, 1], ms: 1200 },
    infer: { full: [1, 5], quick: [1, 2], ms: 650 },
  },
  lightnn: {
    train: { full: [3, 30], quick: [2, 6], ms: 60 },
    infer: { full: [3, 60], quick: [2, 12], ms: 25 },
  },
};
const TORCH_START_MS = 1500;
/** --quick must end within 60 s including start-up; cells that would not fit are skipped. */
const QUICK_BUDGET_MS = 52_000;

const CELLS: readonly [ModelName, Mode][] = [
  ['deepnn', 'train'],
  ['lightnn', 'train'],
  ['deepnn', 'infer'],
  ['lightnn', 'infer'],
];

interface Row {
  model: ModelName;
  mode: Mode;
  skipped?: string;
  native?: { img_per_s: number; ms_per_step: number; steps: number; warmup: number; rounds: number[] };
  loss?: { first: number; last: number };
  /** rounds: the better layout of each round; measurements: every layout of every round. */
  torch?: {
    img_per_s: number;
    ms_per_step: number;
    layout: Layout;
    rounds: TorchMeasurement[];
    measurements: TorchMeasurement[];
  };
  ratio?: number;
}

const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number | undefined, d = 1): string => (x === undefined ? '-' : x.toFixed(d));
const label = (m: ModelName, mode: Mode): string => `${MODEL_LABEL[m]} ${mode}`;

/** Threads the native backend uses (same rule as packages/backend-native/src/binding.ts). */
function nativeThreads(): number {
  const t = Number(process.env['RETORT_NUM_THREADS'] ?? process.env['OMP_NUM_THREADS'] ?? 0);
  return t > 0 ? t : availableParallelism();
}

async function benchCell(
  model: ModelName,
  mode: Mode,
  o: Options,
  haveTorch: boolean,
  first: boolean,
): Promise<Row> {
  const plan = TORCH_PLAN[model][mode];
  const [torchWarmup, torchSteps] = o.quick ? plan.quick : plan.full;
  const layouts: Layout[] = o.quick ? ['channels_last'] : ['nchw', 'channels_last'];
  const torchCostMs = haveTorch ? TORCH_START_MS + plan.ms * (torchWarmup + torchSteps) * layouts.length : 0;
  if (o.quick && !first && performance.now() + 2 * torchCostMs > QUICK_BUDGET_MS) {
    return { model, mode, skipped: 'quick time budget' };
  }
  const cell: Cell = makeCell(model, mode, o.batch, o.adam);
  try {
    const warmup = o.warmup ?? (o.quick ? 1 : 2);
    log(`${label(model, mode)}: native warm-up, ${warmup} step(s)`);
    let stepMs = 0;
    let firstLoss = Number.NaN;
    for (let i = 0; i < warmup; i++) {
      const t = timeSteps(cell, 1);
      stepMs = t.ms;
      if (i === 0) firstLoss = t.loss;
    }
    const steps =
      o.steps ?? Math.max(1, Math.min(o.quick ? 20 : 50, Math.round((o.quick ? 2000 : 8000) / stepMs)));
    if (o.quick && !first && performance.now() + steps * stepMs + torchCostMs > QUICK_BUDGET_MS) {
      return { model, mode, skipped: 'quick time budget' };
    }
    const tensorsBefore = tf.memory().numTensors;
    const nat: number[] = [];
    const tor: TorchMeasurement[] = [];
    const torAll: TorchMeasurement[] = [];
    let lastLoss = Number.NaN;
    for (let r = 0; r < o.rounds; r++) {
      const t = timeSteps(cell, steps);
      lastLoss = t.loss;
      nat.push((o.batch * steps * 1000) / t.ms);
      let msg = `${label(model, mode)} round ${r + 1}/${o.rounds}: native ${fmt(nat.at(-1))} img/s`;
      if (haveTorch) {
        const ms = await runTorch({
          model,
          mode,
          layouts,
          steps: torchSteps,
          warmup: torchWarmup,
          batch: o.batch,
          threads: nativeThreads(),
        });
        const best = ms.reduce((a, b) => (b.img_per_s > a.img_per_s ? b : a));
        tor.push(best);
        torAll.push(...ms);
        msg += `, PyTorch ${ms.map((m) => `${m.layout} ${fmt(m.img_per_s)}`).join(', ')} img/s`;
      }
      log(msg);
    }
    const leaked = tf.memory().numTensors - tensorsBefore;
    if (leaked !== 0) log(`warning: ${label(model, mode)}: ${leaked} tensors more after the timed steps`);
    const nImg = median(nat);
    const row: Row = {
      model,
      mode,
      native: { img_per_s: nImg, ms_per_step: (o.batch * 1000) / nImg, steps, warmup, rounds: nat },
    };
    if (mode === 'train') {
      row.loss = { first: firstLoss, last: lastLoss };
      // A fixed batch must be memorised: a loss that does not fall means the step does not train.
      if (!(lastLoss < firstLoss))
        log(`warning: ${label(model, mode)}: loss ${firstLoss} -> ${lastLoss} did not fall`);
    }
    if (tor.length > 0) {
      const tImg = median(tor.map((m) => m.img_per_s));
      const pick = tor.reduce((a, b) =>
        Math.abs(b.img_per_s - tImg) < Math.abs(a.img_per_s - tImg) ? b : a,
      );
      row.torch = {
        img_per_s: tImg,
        ms_per_step: (o.batch * 1000) / tImg,
        layout: pick.layout,
        rounds: tor,
        measurements: torAll,
      };
      row.ratio = nImg / tImg;
    }
    return row;
  } finally {
    cell.dispose();
  }
}

function printTable(rows: readonly Row[], haveTorch: boolean): void {
  const head = [
    'model',
    'mode',
    'native img/s',
    'native ms/step',
    'PyTorch img/s',
    'PyTorch layout',
    'native/PyTorch',
  ];
  const body = rows.map((r) =>
    r.skipped !== undefined
      ? [MODEL_LABEL[r.model], r.mode, `skipped (${r.skipped})`, '', '', '', '']
      : [
          MODEL_LABEL[r.model],
          r.mode,
          fmt(r.native?.img_per_s),
          fmt(r.native?.ms_per_step),
          haveTorch ? fmt(r.torch?.img_per_s) : 'n/a',
          r.torch?.layout ?? '-',
          fmt(r.ratio, 2),
        ],
  );
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  const out = [line(head), `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)];
  // Every table names the CPU and the code paths it ran: the addon's level and oneDNN's cap.
  process.stdout.write(`${machineLine()}\n\n${out.join('\n')}\n`);
}

/** CPU model and features, the addon level loaded and oneDNN's ISA cap (figures differ by all three). */
function machineLine(): string {
  return `CPU: ${describeCpu()}; addon ${nativeIsa ?? 'not loaded'}; ONEDNN_MAX_CPU_ISA=${process.env['ONEDNN_MAX_CPU_ISA'] ?? 'ALL'}`;
}

function outPath(name: string): string {
  const dir = fileURLToPath(new URL('./out/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  return `${dir}${name}`;
}

async function profile(o: Options): Promise<void> {
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  const nativeSet = new Set(nativeAvailable ? nativeKernelNames : []);
  const all = [];
  for (const model of ['deepnn', 'lightnn'] as const) {
    log(
      `profiling one ${MODEL_LABEL[model]} training step (batch ${o.batch}) after one warm-up step, ${o.adam} Adam`,
    );
    const p = await profileTrainStep(model, o.batch, o.adam);
    all.push(p);
    const rows = p.kernels.slice(0, 15).map((k) => ({
      kernel: k.name,
      where: nativeSet.has(k.name) ? 'native' : 'js',
      calls: String(k.calls),
      ms: k.ms.toFixed(1),
      pct: `${((100 * k.ms) / p.kernelMs).toFixed(1)}%`,
    }));
    const cols = ['kernel', 'where', 'calls', 'ms', 'pct'] as const;
    const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
    const fmtRow = (cells: readonly string[]): string =>
      cells.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
    process.stdout.write(
      `${machineLine()}\n${MODEL_LABEL[model]} training step, batch ${o.batch}, ${o.adam} Adam: wall ${p.wallMs.toFixed(0)} ms, ` +
        `in kernels ${p.kernelMs.toFixed(0)} ms (${p.kernels.length} kernel kinds)\n` +
        `${fmtRow(cols)}\n${rows.map((r) => fmtRow(cols.map((c) => r[c]))).join('\n')}\n\n`,
    );
  }
  writeFileAtomic(outPath('engine-profile.json'), `${JSON.stringify(all, null, 2)}\n`);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  await tf.setBackend('native');
  await tf.ready();
  if (tf.getBackend() !== 'native')
    throw new Error(`tfjs backend is '${tf.getBackend()}', expected 'native'`);
  log(
    nativeAvailable
      ? `native backend: oneDNN addon loaded (${nativeIsa}), ${nativeKernelNames.length} native kernels, ${nativeThreads()} threads; ${machineLine()}`
      : 'native backend: addon NOT loaded, every kernel runs in JS',
  );
  if (o.profile) {
    await profile(o);
    return;
  }
  const python = torchPython();
  const haveTorch = python !== null;
  log(
    haveTorch
      ? `PyTorch: ${python} (OMP_NUM_THREADS=${nativeThreads()})`
      : `PyTorch: not importable by ${pythonCandidates.join(', ')}`,
  );
  const rows: Row[] = [];
  for (const [model, mode] of CELLS) rows.push(await benchCell(model, mode, o, haveTorch, rows.length === 0));

  printTable(rows, haveTorch);
  const deepTrain = rows.find((r) => r.model === 'deepnn' && r.mode === 'train');
  const torchVersion = rows.find((r) => r.torch !== undefined)?.torch?.rounds[0]?.torch ?? null;
  const report = {
    generated: new Date().toISOString(),
    quick: o.quick,
    batch: o.batch,
    rounds: o.rounds,
    adam: o.adam,
    threads: nativeThreads(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cpuFeatures: describeCpu(),
    addonIsa: nativeIsa,
    onednnMaxCpuIsa: process.env['ONEDNN_MAX_CPU_ISA'] ?? 'ALL',
    cores: availableParallelism(),
    node: process.version,
    torch: torchVersion,
    nativeAddon: nativeAvailable,
    nativeKernels: nativeAvailable ? nativeKernelNames : [],
    rows,
    deepnnTrainRatio: deepTrain?.ratio ?? null,
  };
  writeFileAtomic(outPath('engine.json'), `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote bench/out/engine.json (${(performance.now() / 1000).toFixed(1)} s since start)`);
  if (!haveTorch) {
    process.stdout.write('PyTorch not found: apt-get install python3-torch for the comparison\n');
    return;
  }
  process.stdout.write(`deepnn-train-ratio ${fmt(deepTrain?.ratio, 2)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:engine: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
