/**
 * `npm run bench:int8` — int8 export targets side by side: for ResNet-8, LightNN and MobileNetV2
 * (x0.5), random-weight and trained on Fashion-MNIST, static QDQ and dynamic int8, targets
 * `portable` (7-bit weights) and `vnni` (8-bit): onnxruntime's top-1 agreement with the fp32 tfjs
 * model on the test set, the largest |logit difference|, and the pair sums that would saturate on
 * an x86-64 CPU without VNNI (measure/int8-saturation.ts, over the first test images). The table
 * names the CPU it ran on: agreement is measured on this CPU's onnxruntime kernels; the saturation
 * column is what an AVX2 machine would add to it.
 *
 * Options: --epochs N (training of the trained rows, default 3; runs are reused), --sat-images N
 * (images for the saturation reference, default 64), --out FILE (default
 * bench/results/int8-targets.md), --runs DIR (default runs/).
 */

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  buildData,
  buildModel,
  calibrateRanges,
  checkOnnx,
  type ExperimentData,
  exportOnnx,
  type Int8Target,
  int8Saturation,
  loadRun,
  takeBatches,
  writeFileAtomic,
} from 'retort-kd';
import { describeCpu } from 'retort-kd-native';
import { argOf, runOrReuse } from './lib/runs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const epochs = Number(argOf(argv, 'epochs', '3'));
const satImages = Number(argOf(argv, 'sat-images', '64'));
const out = resolve(argOf(argv, 'out', join(root, 'bench/results/int8-targets.md')));
const runs = resolve(argOf(argv, 'runs', join(root, 'runs')));

const MODELS: [string, Record<string, number>][] = [
  ['resnet8', {}],
  ['lightnn', {}],
  ['mobilenetv2', { widthMult: 0.5 }],
];
const TARGETS: Int8Target[] = ['portable', 'vnni'];

interface Row {
  model: string;
  weights: string;
  mode: string;
  target: Int8Target;
  fp32Top1: number;
  top1: number;
  agreement: number;
  maxAbsDiff: number;
  saturated: number;
  pairs: number;
  bound: number;
  /** % of test images whose fp32 top-2 logit margin is below this export's max |logit diff|. */
  nearTies: number;
}

/** fp32 top-2 logit margin of every test image. */
async function margins(model: tfl.LayersModel, data: ExperimentData): Promise<Float32Array> {
  const out: number[] = [];
  for await (const b of data.test.epoch()) {
    const y = tf.tidy(() => model.predict(tf.tensor4d(b.x, [b.n, ...data.shape])) as tf.Tensor);
    const v = y.dataSync();
    y.dispose();
    const k = data.numClasses;
    for (let i = 0; i < b.n; i++) {
      let a = Number.NEGATIVE_INFINITY;
      let c = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < k; j++) {
        const x = v[i * k + j]!;
        if (x > a) {
          c = a;
          a = x;
        } else if (x > c) c = x;
      }
      out.push(a - c);
    }
  }
  return Float32Array.from(out);
}

async function calibration(data: ExperimentData): Promise<tf.Tensor[]> {
  return (await takeBatches(data.trainPlain, 8)).map((b) => tf.tensor4d(b.x, [b.n, ...data.shape]));
}

async function measure(
  model: tfl.LayersModel,
  data: ExperimentData,
  label: string,
  kind: string,
): Promise<Row[]> {
  const calib = await calibration(data);
  const quant = calibrateRanges(model, calib);
  tf.dispose(calib);
  const exports: { mode: string; target: Int8Target; bytes: Uint8Array }[] = [];
  for (const mode of ['static', 'dynamic'])
    for (const target of TARGETS)
      exports.push({
        mode,
        target,
        bytes: exportOnnx(model, mode === 'static' ? { quant, target } : { dynamic: true, target }),
      });
  const fp32 = exportOnnx(model);
  const checks = await checkOnnx([fp32, ...exports.map((e) => e.bytes)], model, data);
  // The first test images, as the model sees them.
  const per = data.shape.reduce((a, c) => a * c, 1);
  const sat = new Float32Array(satImages * per);
  let filled = 0;
  for await (const b of data.test.epoch()) {
    const take = Math.min(b.n, satImages - filled);
    sat.set(b.x.subarray(0, take * per), filled * per);
    filled += take;
    if (filled >= satImages) break;
  }
  const margin = await margins(model, data);
  const rows: Row[] = [];
  for (const [i, e] of exports.entries()) {
    const layers = await int8Saturation(e.bytes, sat, [satImages, ...data.shape]);
    const c = checks[i + 1]!;
    rows.push({
      model: label,
      weights: kind,
      mode: e.mode,
      target: e.target,
      fp32Top1: checks[0]!.top1,
      top1: c.top1,
      agreement: c.agreement,
      maxAbsDiff: c.maxAbsDiff,
      saturated: layers.reduce((a, l) => a + l.saturated, 0),
      pairs: layers.reduce((a, l) => a + l.pairs, 0),
      bound: Math.max(0, ...layers.map((l) => l.bound)),
      nearTies: (100 * margin.filter((m) => m < c.maxAbsDiff).length) / margin.length,
    });
    const r = rows.at(-1)!;
    console.error(
      `${label} ${kind} ${e.mode} ${e.target}: agreement ${r.agreement.toFixed(2)}%, max |diff| ${r.maxAbsDiff.toFixed(4)}, saturated ${r.saturated}/${r.pairs}`,
    );
  }
  return rows;
}

async function main(): Promise<void> {
  const started = performance.now();
  await tf.setBackend('native');
  const rows: Row[] = [];
  for (const [name, options] of MODELS) {
    const label = name === 'mobilenetv2' ? 'MobileNetV2 x0.5' : name === 'resnet8' ? 'ResNet-8' : 'LightNN';
    // Random weights: the zoo's own initialisation (seed 3), BN at its initial statistics.
    const data = buildData(
      { dataset: 'fashion-mnist', batchSize: 128, valFraction: 0, cropPadding: 0, hflip: false },
      1,
    );
    const fresh = buildModel(name, { ...options, inputShape: data.shape, numClasses: 10, seed: 3 });
    rows.push(...(await measure(fresh, data, label, 'random')));
    fresh.dispose();
    // Trained: labels only, `epochs` epochs of the baseline recipe (runs reused).
    const sets = [
      `name=int8-bench-${name}-e${epochs}`,
      `model.name=${name}`,
      `epochs=${epochs}`,
      ...Object.entries(options).map(([k, v]) => `model.options.${k}=${v}`),
    ];
    await runOrReuse(join(root, 'configs/fashion-mnist/baseline/resnet8.yaml'), sets, runs);
    const run = await loadRun(join(runs, `int8-bench-${name}-e${epochs}`), 'bench:int8');
    rows.push(...(await measure(run.model, run.data, label, `trained ${epochs} ep`)));
  }
  const minutes = (performance.now() - started) / 60000;
  const head =
    '| model | weights | int8 | target | fp32 top-1 | int8 top-1 | agreement % | max abs logit diff | near ties % | saturating pairs off VNNI |';
  const lines = [
    '# Int8 export targets: portable (7-bit weights) vs vnni (8-bit)',
    '',
    `Command: \`npm run bench:int8 -- --epochs ${epochs} --sat-images ${satImages}\`; ${minutes.toFixed(1)} min wall, ${new Date().toISOString().slice(0, 10)}.`,
    `CPU: ${describeCpu()}. Agreement and logit differences are onnxruntime ${'(1.30, CPU)'} on this CPU against the fp32 tfjs model, all 10,000 Fashion-MNIST test images.`,
    "Near ties: test images whose fp32 top-2 logit margin is below that export's max |logit diff|, where a flipped top-1 is rounding, not error (fresh random models are full of them: their logits barely differ).",
    `Saturating pairs: u8 x s8 pair sums outside int16 over the first ${satImages} test images, from the reference of onnxruntime's non-VNNI kernels (VPMADDUBSW); nonzero means the file is wrong on AVX2 CPUs. Dynamic int8 uses the product default (convs with >= 32 channels quantized).`,
    '',
    head,
    `|${head
      .split('|')
      .slice(1, -1)
      .map(() => '---')
      .join('|')}|`,
    ...rows.map(
      (r) =>
        `| ${r.model} | ${r.weights} | ${r.mode} | ${r.target} | ${r.fp32Top1.toFixed(2)} | ${r.top1.toFixed(2)} | ${r.agreement.toFixed(2)} | ${r.maxAbsDiff.toPrecision(2)} | ${r.nearTies.toFixed(2)} | ${r.saturated.toLocaleString('en')} of ${r.pairs.toLocaleString('en')} |`,
    ),
    '',
  ];
  writeFileAtomic(out, lines.join('\n'));
  console.error(`wrote ${out}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:int8: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
