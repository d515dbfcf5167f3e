/**
 * `npm run bench:onnx-ptq` — post-training int8 of ONNX files (`quantizeOnnx`), measured on the
 * full Fashion-MNIST test set (10,000 images) for two fp32 models:
 *  (a) the PyTorch-exported ResNet-20 fixture (NCHW, its own normalization), calibrated on 320
 *      training images;
 *  (b) Retort's ResNet-8 trained for --epochs (labels only, the baseline recipe; the run is reused)
 *      and exported with exportOnnx (NHWC, batch norms as separate nodes), calibrated the same way;
 *      beside it, Retort's own int8 export of the tfjs model (exportOnnx with calibrateRanges on
 *      the same images), which quantizeOnnx should match from the ONNX file alone.
 * Each int8 file: top-1 of fp32 and int8 in onnxruntime, top-1 agreement int8 vs fp32, file size,
 * and latency (measureOrtLatencies: all of a model's files timed interleaved in one process) at
 * batch 1 and 64, 1 and 2 intra-op threads; also the int8 file with its stem conv quantized
 * (`stem: 'int8'`), to show why the default keeps it float.
 *
 * Options: --epochs N (default 2), --calib N (calibration images, default 320), --rounds N and
 * --repeats N (latency, default 5 x 10), --runs DIR (default bench/out/runs), --out FILE (default
 * bench/results/onnx-ptq-fashion-mnist.md).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import {
  calibrateRanges,
  exportOnnx,
  FASHION_MNIST_DIR,
  loadIdxSplit,
  loadRun,
  measureOrtLatencies,
  quantizeOnnx,
  takeBatches,
  writeFileAtomic,
} from 'retort-kd';
import { argOf, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const epochs = Number(argOf(argv, 'epochs', '2'));
const calibImages = Number(argOf(argv, 'calib', '320'));
const rounds = Number(argOf(argv, 'rounds', '5'));
const repeats = Number(argOf(argv, 'repeats', '10'));
const runs = resolve(argOf(argv, 'runs', join(root, 'bench/out/runs')));
const out = resolve(argOf(argv, 'out', join(root, 'bench/results/onnx-ptq-fashion-mnist.md')));
const fixture = join(root, 'packages/retort/test/fixtures/onnx-teacher/resnet20-fmnist');
const log = (s: string) => process.stderr.write(`${s}\n`);
const notes: string[] = [];

/** A model's test images in its input layout, with labels. */
interface TestSet {
  x: Float32Array;
  y: ArrayLike<number>;
  /** One image's dims in the model's layout. */
  shape: number[];
}

interface Row {
  model: string;
  file: string;
  bytes: number;
  top1: number;
  agreement: number;
  /** Median ms at [threads 1 batch 1, threads 1 batch 64, threads 2 batch 1, threads 2 batch 64]. */
  ms: number[];
}

/** Top-1 classes of `bytes` on `set`, in chunks of 500 (onnxruntime defaults, all optimizations). */
async function predict(bytes: Uint8Array, set: TestSet): Promise<Int32Array> {
  const s = await ort.InferenceSession.create(bytes);
  const per = set.shape.reduce((a, b) => a * b, 1);
  const n = set.x.length / per;
  const pred = new Int32Array(n);
  try {
    for (let i = 0; i < n; i += 500) {
      const m = Math.min(500, n - i);
      const x = set.x.subarray(i * per, (i + m) * per);
      const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, [m, ...set.shape]) });
      const logits = r[s.outputNames[0]!]!.data as Float32Array;
      const k = logits.length / m;
      for (let j = 0; j < m; j++) {
        let b = 0;
        for (let c = 1; c < k; c++) if (logits[j * k + c]! > logits[j * k + b]!) b = c;
        pred[i + j] = b;
      }
    }
  } finally {
    await s.release();
  }
  return pred;
}

const SETTINGS = [
  [1, 1],
  [1, 64],
  [2, 1],
  [2, 64],
] as const;

/** One model: fp32 and int8 files evaluated on the whole test set and timed interleaved. */
async function measure(model: string, files: { file: string; bytes: Uint8Array }[], set: TestSet) {
  const preds: Int32Array[] = [];
  for (const f of files) preds.push(await predict(f.bytes, set));
  const n = preds[0]!.length;
  const ms = files.map((): number[] => []);
  for (const [threads, batch] of SETTINGS) {
    const lat = await measureOrtLatencies(
      files.map((f) => f.bytes),
      set.shape,
      batch,
      { rounds, repeats, warmup: 3, threads },
    );
    for (const [i, l] of lat.entries()) ms[i]!.push(l.medianMs);
  }
  return files.map((f, i): Row => {
    let top1 = 0;
    let agree = 0;
    for (let j = 0; j < n; j++) {
      if (preds[i]![j] === set.y[j]) top1++;
      if (preds[i]![j] === preds[0]![j]) agree++;
    }
    const row = {
      model,
      file: f.file,
      bytes: f.bytes.length,
      top1: top1 / n,
      agreement: agree / n,
      ms: ms[i]!,
    };
    log(
      `${model} ${f.file}: top-1 ${(100 * row.top1).toFixed(2)}%, agreement ${(100 * row.agreement).toFixed(2)}%, ${row.bytes} bytes, ms ${row.ms.map((m) => m.toFixed(3)).join(' / ')}`,
    );
    return row;
  });
}

/** (a) The PyTorch ResNet-20: NCHW, normalized with the fixture's mean and std. */
async function resnet20(): Promise<Row[]> {
  const meta = JSON.parse(readFileSync(`${fixture}.json`, 'utf8')) as { mean: number[]; std: number[] };
  const norm = (imgs: Uint8Array, n: number) =>
    Float32Array.from(imgs.subarray(0, n * 784), (v) => (v / 255 - meta.mean[0]!) / meta.std[0]!);
  const train = loadIdxSplit(FASHION_MNIST_DIR, 'train');
  const test = loadIdxSplit(FASHION_MNIST_DIR, 't10k');
  const fp32 = readFileSync(`${fixture}.onnx`);
  const calib = norm(train.images, calibImages);
  const batches = Array.from({ length: Math.ceil(calibImages / 64) }, (_, i) =>
    calib.subarray(i * 64 * 784, Math.min(calibImages, (i + 1) * 64) * 784),
  );
  const t0 = performance.now();
  const int8 = await quantizeOnnx(fp32, batches, { name: 'resnet20-fmnist.onnx' });
  log(`resnet20: quantizeOnnx ${(performance.now() - t0).toFixed(0)} ms, ${int8.nodes} nodes`);
  const stem = await quantizeOnnx(fp32, batches, { stem: 'int8' });
  return measure(
    'ResNet-20 (PyTorch, NCHW)',
    [
      { file: 'fp32 (fixture)', bytes: fp32 },
      { file: 'quantizeOnnx int8', bytes: int8.bytes },
      { file: "quantizeOnnx int8, stem: 'int8'", bytes: stem.bytes },
    ],
    { x: norm(test.images, test.count), y: test.labels, shape: [1, 28, 28] },
  );
}

/** (b) Retort's ResNet-8, trained here (or reused) and exported fp32 NHWC. */
async function resnet8(): Promise<Row[]> {
  const name = `onnx-ptq-resnet8-e${epochs}`;
  const trained = await runOrReuse(
    join(root, 'configs/fashion-mnist/baseline/resnet8.yaml'),
    [`name=${name}`, `epochs=${epochs}`],
    runs,
  );
  notes.push(
    `ResNet-8: run ${name} (configs/fashion-mnist/baseline/resnet8.yaml, epochs=${epochs}; trained in ${trained.trainSeconds.toFixed(0)} s, reused when present), tfjs test top-1 ${trained.testTop1.toFixed(2)}%.`,
  );
  const run = await loadRun(join(runs, name), 'bench:onnx-ptq');
  const shape = [...run.data.shape];
  const per = shape.reduce((a, b) => a * b, 1);
  const calib = (await takeBatches(run.data.trainPlain, Math.ceil(calibImages / 64))).map((b) => b.x);
  const flat = new Float32Array(calib.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of calib) {
    flat.set(x, at);
    at += x.length;
  }
  const images = flat.subarray(0, calibImages * per);
  const batches = Array.from({ length: Math.ceil(calibImages / 64) }, (_, i) =>
    images.subarray(i * 64 * per, Math.min(calibImages, (i + 1) * 64) * per),
  );
  const fp32 = exportOnnx(run.model);
  const int8 = await quantizeOnnx(fp32, batches, { name: `${name}.onnx` });
  log(`resnet8: quantizeOnnx ${int8.nodes} nodes, ${int8.foldedBatchNorms} batch norms folded`);
  const stem = await quantizeOnnx(fp32, batches, { stem: 'int8' });
  const tfBatches = batches.map((b) =>
    tf.tensor4d(b, [b.length / per, ...(shape as [number, number, number])]),
  );
  const exporter = exportOnnx(run.model, { quant: calibrateRanges(run.model, tfBatches) });
  tf.dispose(tfBatches);
  const xs: Float32Array[] = [];
  const ys: number[] = [];
  for await (const b of run.data.test.epoch()) {
    xs.push(b.x.slice());
    ys.push(...b.y);
  }
  const x = new Float32Array(ys.length * per);
  at = 0;
  for (const c of xs) {
    x.set(c, at);
    at += c.length;
  }
  return measure(
    `ResNet-8 (Retort, ${epochs} epochs, NHWC)`,
    [
      { file: 'fp32 (exportOnnx)', bytes: fp32 },
      { file: 'quantizeOnnx int8', bytes: int8.bytes },
      { file: "quantizeOnnx int8, stem: 'int8'", bytes: stem.bytes },
      { file: 'exportOnnx int8 (tfjs model, same calibration)', bytes: exporter },
    ],
    { x, y: ys, shape },
  );
}

function machine(): string {
  const text = execFileSync('lscpu', { encoding: 'utf8' });
  const field = (k: string) => text.match(new RegExp(`^${k}:\\s*(.+)$`, 'm'))?.[1]?.trim() ?? '?';
  const flags = field('Flags').split(/\s+/);
  return `${field('Model name')}, ${field('CPU\\(s\\)')} CPUs; avx512_vnni ${flags.includes('avx512_vnni') ? 'yes' : 'no'}, avx_vnni ${flags.includes('avx_vnni') ? 'yes' : 'no'}`;
}

async function main(): Promise<void> {
  const started = performance.now();
  const rows = [...(await resnet20()), ...(await resnet8())];
  const minutes = (performance.now() - started) / 60000;
  const fp32Of = (m: string) => rows.find((r) => r.model === m)!;
  const head = [
    'model',
    'file',
    'size KB (x fp32)',
    'top-1 %',
    'agreement with fp32 %',
    ...SETTINGS.map(([t, b]) => `ms t${t} b${b} (x fp32)`),
  ];
  const line = (c: readonly string[]) => `| ${c.join(' | ')} |`;
  const body = rows.map((r) => {
    const f = fp32Of(r.model);
    return line([
      r.model,
      r.file,
      `${(r.bytes / 1024).toFixed(0)} (${(r.bytes / f.bytes).toFixed(2)})`,
      (100 * r.top1).toFixed(2),
      (100 * r.agreement).toFixed(2),
      ...r.ms.map((m, i) => `${m.toFixed(3)} (${(m / f.ms[i]!).toFixed(2)})`),
    ]);
  });
  const text = [
    '# Post-training int8 of ONNX files (quantizeOnnx), Fashion-MNIST',
    '',
    `Command: \`npm run bench:onnx-ptq -- --epochs ${epochs} --calib ${calibImages} --rounds ${rounds} --repeats ${repeats}\` (${new Date().toISOString().slice(0, 10)}, ${minutes.toFixed(1)} min wall).`,
    `Machine: ${machine()}; onnxruntime-node ${ort.env.versions.common} (CPU).`,
    ...notes,
    '',
    `Int8: per-channel weights, target portable (7-bit weights, right on every x86-64 and ARM64), ${calibImages} training images for min-max calibration, float stem unless said. Top-1 and agreement over all 10,000 test images in onnxruntime; latency is the median of ${rounds} rounds x ${repeats} runs per file, every file of a model timed interleaved (measureOrtLatencies), t = intra-op threads, b = batch; x fp32 = ratio to the fp32 file of the same model.`,
    '',
    line(head),
    line(head.map(() => '---')),
    ...body,
    '',
  ].join('\n');
  writeFileAtomic(out, text);
  process.stdout.write(text);
  log(`wrote ${out}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:onnx-ptq: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
