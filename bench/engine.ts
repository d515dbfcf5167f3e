/**
 * Engine benchmark: the KD tutorial's DeepNN and LightNN (batch 128, 32x32x3 random data) trained
 * (Adam 1e-3, softmax cross-entropy) and run for inference on the tfjs `native` backend, side by
 * side with PyTorch (bench/torch_engine.py) on the same machine.
 *
 *   npm run bench:engine                  2 interleaved rounds per model and mode (~15 minutes)
 *   npm run bench:engine -- --quick       DeepNN and ResNet-8 training, one short round (~40 s);
 *                                         last line `deepnn-train-ratio <x>`
 *   npm run bench:engine -- --profile     one native training step per model: top kernels, time by
 *                                         group (conv, batch-norm, elementwise, JS glue, ...) and
 *                                         GFLOP/s per convolution shape
 *   options: --models a,b (deepnn lightnn resnet8 resnet20 resnet8x4 resnet32x4 wrn_16_2 mobilenetv2
 *            shufflenetv2)  --modes train,infer  --rounds N  --steps N (native timed steps)
 *            --warmup N  --batch N  --adam tfjs|retort (default tfjs: tf.train.adam; retort: fused)
 *
 * Models: the KD tutorial's DeepNN and LightNN and the zoo families (RepDistiller's CIFAR models),
 * all at 32x32x3 and 10 classes; PyTorch builds the zoo from the definitions of
 * packages/retort/test/fixtures/make_zoo_fixtures.py. Rounds alternate native and PyTorch (one Python
 * process per round, OMP_NUM_THREADS = the native thread count, OMP_WAIT_POLICY unset) so both see the
 * same machine state; each side's figure is the median over rounds, PyTorch's the better of NCHW and
 * channels_last per round (--quick: channels_last only). GFLOP/s = img/s x FLOPs per image (2 per
 * forward multiply-add, x3 for training); % of peak against measurePeak (a large convolution). Warm-up steps are not timed. Ratio = native img/s
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
  forwardMacs,
  MODEL_LABEL,
  MODEL_NAMES,
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
  models: ModelName[] | null;
  modes: Mode[];
  rounds: number;
  steps: number | null;
  warmup: number | null;
  batch: number;
  adam: AdamImpl;
}

const USAGE =
  'usage: bench/engine.ts [--quick | --profile] [--models a,b] [--modes train,infer] [--rounds N] [--steps N] [--warmup N] [--batch N] [--adam tfjs|retort]';

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    quick: false,
    profile: false,
    models: null,
    modes: ['train', 'infer'],
    rounds: 2,
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
    else if (a === '--models') {
      const v = (argv[++i] ?? '').split(',');
      const bad = v.filter((m) => !(MODEL_NAMES as readonly string[]).includes(m));
      if (bad.length > 0 || v.length === 0)
        throw new Error(
          `--models: unknown ${bad.join(', ')}; choose from ${MODEL_NAMES.join(', ')}\n${USAGE}`,
        );
      o.models = v as ModelName[];
    } else if (a === '--modes') {
      const v = (argv[++i] ?? '').split(',');
      if (v.length === 0 || v.some((m) => m !== 'train' && m !== 'infer'))
        throw new Error(`--modes takes train, infer or train,infer\n${USAGE}`);
      o.modes = v as Mode[];
    } else if (a === '--adam') {
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

/** Seconds of timed steps per round and side (full run / --quick). */
const NATIVE_SECONDS = { full: 5, quick: 2 };
const TORCH_SECONDS = { full: 3, quick: 1.5 };
const TORCH_START_MS = 1500;
/** --quick must end within ~30 s of cells (plus start-up); cells that would not fit are skipped. */
const QUICK_BUDGET_MS = 32_000;

const QUICK_CELLS: readonly [ModelName, Mode][] = [
  ['deepnn', 'train'],
  ['resnet8', 'train'],
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
  /** Native GFLOP/s (2 FLOPs per multiply-add; training counts 3 convolutions per layer). */
  gflops?: number;
  peakPct?: number | undefined;
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
  peak: number,
): Promise<Row> {
  const torchSeconds = o.quick ? TORCH_SECONDS.quick : TORCH_SECONDS.full;
  const layouts: Layout[] = o.quick ? ['channels_last'] : ['nchw', 'channels_last'];
  const torchWarmup = o.quick ? 1 : 2;
  if (o.quick && !first && performance.now() + (haveTorch ? TORCH_START_MS : 0) > QUICK_BUDGET_MS)
    return { model, mode, skipped: 'quick time budget' };
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
    const seconds = o.quick ? NATIVE_SECONDS.quick : NATIVE_SECONDS.full;
    const steps = o.steps ?? Math.max(1, Math.min(200, Math.round((seconds * 1000) / stepMs)));
    // PyTorch is assumed up to 5x slower per step for its warm-up.
    const torchCostMs = haveTorch
      ? TORCH_START_MS + layouts.length * (torchSeconds * 1000 + 5 * stepMs * torchWarmup)
      : 0;
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
          seconds: torchSeconds,
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
    // FLOPs per image: 2 per forward multiply-add; training adds backprop-input and -filter (3x).
    const flopsPerImg = (mode === 'train' ? 6 : 2) * forwardMacs(model);
    const gflops = (nImg * flopsPerImg) / 1e9;
    const row: Row = {
      model,
      mode,
      native: { img_per_s: nImg, ms_per_step: (o.batch * 1000) / nImg, steps, warmup, rounds: nat },
      gflops,
      peakPct: peak > 0 ? (100 * gflops) / peak : undefined,
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

/**
 * The machine's practical fp32 peak on the native backend: the best GFLOP/s of a large 3x3
 * convolution ([32, 32, 32, 256] -> 256 channels, oneDNN's jit kernel, the same threads and ISA cap
 * as the models) and of a 1024^3 matmul, best of 5 tries each. A convolution that large keeps the FMA
 * units busy: on the Zen 5 machine here it reached 436 GFLOP/s (AVX-512) and 213 (AVX2), where an
 * FMA-chain microbenchmark measured 428 and 226. The backend is synchronous, so the output is not
 * read back (a read would copy it and time the copy).
 */
function measurePeak(): number {
  const rate = (f: () => tf.Tensor, flop: number): number => {
    let best = 0;
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      const y = f();
      const ms = performance.now() - t0;
      y.dispose();
      if (i > 0) best = Math.max(best, flop / (ms / 1000) / 1e9);
    }
    return best;
  };
  const x = tf.randomNormal([32, 32, 32, 256], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, 256, 256], 0, 1, 'float32', 2) as tf.Tensor4D;
  const a = tf.randomNormal([1024, 1024], 0, 1, 'float32', 3) as tf.Tensor2D;
  const conv = rate(() => tf.conv2d(x, w, 1, 'same'), 2 * 32 * 32 * 32 * 256 * 256 * 9);
  const mm = rate(() => tf.matMul(a, a), 2 * 1024 ** 3);
  tf.dispose([x, w, a]);
  return Math.max(conv, mm);
}

function printTable(rows: readonly Row[], haveTorch: boolean, peak: number): void {
  const head = [
    'model',
    'mode',
    'native img/s',
    'native ms/step',
    'GFLOP/s',
    '% of peak',
    'PyTorch img/s',
    'PyTorch layout',
    'native/PyTorch',
  ];
  const body = rows.map((r) =>
    r.skipped !== undefined
      ? [MODEL_LABEL[r.model], r.mode, `skipped (${r.skipped})`, '', '', '', '', '', '']
      : [
          MODEL_LABEL[r.model],
          r.mode,
          fmt(r.native?.img_per_s),
          fmt(r.native?.ms_per_step),
          fmt(r.gflops),
          fmt(r.peakPct),
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
  process.stdout.write(
    `${machineLine()}\npeak ${fmt(peak)} GFLOP/s (best of a large 3x3 convolution and a 1024^3 matmul, native backend); GFLOP/s counts 2 per multiply-add, training 3 convolutions per layer (forward, backprop-input, backprop-filter)\n\n${out.join('\n')}\n`,
  );
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
  const pad = (cells: readonly string[], w: readonly number[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const table = (cols: readonly string[], rows: readonly string[][]) => {
    const w = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
    return `${pad(cols, w)}\n${rows.map((r) => pad(r, w)).join('\n')}\n`;
  };
  for (const model of o.models ?? (['deepnn', 'lightnn', 'resnet8', 'resnet20'] as ModelName[])) {
    log(
      `profiling one ${MODEL_LABEL[model]} training step (batch ${o.batch}) after one warm-up step, ${o.adam} Adam`,
    );
    const p = await profileTrainStep(model, o.batch, o.adam);
    all.push(p);
    const pct = (ms: number) => `${((100 * ms) / p.wallMs).toFixed(1)}%`;
    const kernels = p.kernels
      .slice(0, 15)
      .map((k) => [
        k.name,
        nativeSet.has(k.name) ? 'native' : 'js',
        String(k.calls),
        k.ms.toFixed(1),
        pct(k.ms),
      ]);
    const groups = [
      ...Object.entries(p.groups).map(([g, ms]) => [g, '', '', ms.toFixed(1), pct(ms)]),
      ['JS glue (wall - kernels)', '', '', (p.wallMs - p.kernelMs).toFixed(1), pct(p.wallMs - p.kernelMs)],
    ];
    const shapes = p.shapes
      .slice(0, 12)
      .map((sh) => [sh.name, sh.shape, String(sh.calls), sh.ms.toFixed(1), sh.gflops.toFixed(1)]);
    process.stdout.write(
      `${machineLine()}\n${MODEL_LABEL[model]} training step, batch ${o.batch}, ${o.adam} Adam: wall ${p.wallMs.toFixed(0)} ms, ` +
        `in kernels ${p.kernelMs.toFixed(0)} ms (${p.kernels.length} kernel kinds); % of the step's wall time\n` +
        table(['kernel', 'where', 'calls', 'ms', '% wall'], kernels) +
        `\nby group (weight reorders to oneDNN's blocked layout run inside the conv kernels)\n` +
        table(['group', '', '', 'ms', '% wall'], groups) +
        `\nconvolution and matmul shapes (inputs -> output), slowest first\n` +
        table(['kernel', 'shape', 'calls', 'ms', 'GFLOP/s'], shapes) +
        '\n',
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
  const peak = measurePeak();
  log(`peak: ${fmt(peak)} GFLOP/s (best of a large 3x3 convolution and a 1024^3 matmul, native backend)`);
  const cells: [ModelName, Mode][] =
    o.quick && o.models === null
      ? [...QUICK_CELLS]
      : (o.models ?? [...MODEL_NAMES]).flatMap((m) => o.modes.map((mode): [ModelName, Mode] => [m, mode]));
  const rows: Row[] = [];
  for (const [model, mode] of cells)
    rows.push(await benchCell(model, mode, o, haveTorch, rows.length === 0, peak));

  printTable(rows, haveTorch, peak);
  const deepTrain = rows.find((r) => r.model === 'deepnn' && r.mode === 'train');
  const torchVersion = rows.find((r) => r.torch !== undefined)?.torch?.rounds[0]?.torch ?? null;
  const report = {
    generated: new Date().toISOString(),
    quick: o.quick,
    batch: o.batch,
    rounds: o.rounds,
    adam: o.adam,
    peakGflops: peak,
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
