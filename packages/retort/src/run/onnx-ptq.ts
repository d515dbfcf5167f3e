/**
 * `retort compress` with `quantize: { direct: true }`: post-training int8 of the user's ONNX file
 * itself (export/onnx/ptq.ts), no import into tfjs and no training, as onnxruntime's Python
 * quantizer does. Calibration batches come from the pipeline's data, in the model's own layout;
 * the int8 file is then run beside the original in onnxruntime on the test set (top-1 of each,
 * agreement, latency at batch 1 and 64) and fails the run below `check.int8Agreement`, after
 * results.json and the file are written.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ExperimentData } from '../data/build.js';
import { takeBatches } from '../data/loader.js';
import { quantizeOnnx } from '../export/onnx/ptq.js';
import { type FileSize, filesTable, measureFiles } from '../measure/files.js';
import { measureOrtLatencies } from '../measure/latency.js';
import { rowArgmax } from '../util/argmax.js';
import { writeFileAtomic } from '../util/atomic.js';
import { RetortError } from '../util/errors.js';
import { loadOrt } from '../util/ort.js';
import type { PipelineConfig } from './compress.js';

export interface DirectPtqReport {
  stage: 'onnx-ptq';
  /** Quantized ops (Conv, Gemm, MatMul). */
  nodes: number;
  fp32: { top1: number; bytes: number; latencyB1Ms: number; latencyB64Ms: number };
  int8: { top1: number; bytes: number; latencyB1Ms: number; latencyB64Ms: number; int8Target: string };
  /** % of test images where the int8 file's top-1 equals the original's. */
  agreement: number;
}

/** NHWC batch values in the model's layout. */
function inLayout(
  x: Float32Array,
  n: number,
  shape: readonly number[],
  layout: 'nchw' | 'nhwc',
): Float32Array {
  if (layout === 'nhwc') return x;
  return tf.tidy(
    () =>
      tf
        .transpose(tf.tensor4d(x, [n, ...shape] as [number, number, number, number]), [0, 3, 1, 2])
        .dataSync() as Float32Array,
  );
}

export async function runOnnxPtq(
  cfg: PipelineConfig,
  data: ExperimentData,
  runDir: string,
  log: (l: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<DirectPtqReport> {
  const file = cfg.model?.onnx;
  const q = cfg.quantize;
  if (file === undefined || q === undefined)
    throw new RetortError(`compress '${cfg.name}': quantize.direct needs model.onnx and quantize`);
  const layout = cfg.model!.layout ?? 'nchw';
  const original = new Uint8Array(readFileSync(file));
  const batches = await takeBatches(data.trainPlain, q.calibBatches);
  const result = await quantizeOnnx(
    original,
    batches.map((b) => inLayout(b.x, b.n, data.shape, layout)),
    { weights: q.weights, target: q.target, name: file },
  );
  mkdirSync(join(runDir, 'export'), { recursive: true });
  const out = join(runDir, 'export', 'model.int8.onnx');
  writeFileAtomic(out, result.bytes);
  log(
    `onnx-ptq: ${result.nodes} ops quantized from ${result.samples} calibration images (target ${q.target}, ${q.weights} weights)`,
  );
  // The original and the int8 file side by side on the test set.
  const ort = await loadOrt('checking the int8 file');
  const [a, b] = await Promise.all([
    ort.InferenceSession.create(original),
    ort.InferenceSession.create(result.bytes),
  ]);
  const k = data.numClasses;
  const modelShape = layout === 'nchw' ? [data.shape[2], data.shape[0], data.shape[1]] : [...data.shape];
  let right = [0, 0];
  let agree = 0;
  let n = 0;
  for await (const bt of data.test.epoch()) {
    const x = new ort.Tensor('float32', inLayout(bt.x, bt.n, data.shape, layout), [bt.n, ...modelShape]);
    const ya = (await a.run({ [a.inputNames[0]!]: x }))[a.outputNames[0]!]!.data as Float32Array;
    const yb = (await b.run({ [b.inputNames[0]!]: x }))[b.outputNames[0]!]!.data as Float32Array;
    for (let i = 0; i < bt.n; i++) {
      const [pa, pb] = [rowArgmax(ya, i, k), rowArgmax(yb, i, k)];
      right = [right[0]! + (pa === bt.y[i] ? 1 : 0), right[1]! + (pb === bt.y[i] ? 1 : 0)];
      if (pa === pb) agree++;
    }
    n += bt.n;
  }
  await Promise.all([a.release(), b.release()]);
  const timing = { rounds: 5, repeats: 10, warmup: 3 };
  const b1 = await measureOrtLatencies([original, result.bytes], modelShape, 1, timing);
  const b64 = await measureOrtLatencies([original, result.bytes], modelShape, 64, timing);
  const report: DirectPtqReport = {
    stage: 'onnx-ptq',
    nodes: result.nodes,
    fp32: {
      top1: (100 * right[0]!) / n,
      bytes: original.length,
      latencyB1Ms: b1[0]!.medianMs,
      latencyB64Ms: b64[0]!.medianMs,
    },
    int8: {
      top1: (100 * right[1]!) / n,
      bytes: result.bytes.length,
      latencyB1Ms: b1[1]!.medianMs,
      latencyB64Ms: b64[1]!.medianMs,
      int8Target: q.target,
    },
    agreement: (100 * agree) / n,
  };
  log(
    `onnx-ptq: fp32 top-1 ${report.fp32.top1.toFixed(2)}%, int8 ${report.int8.top1.toFixed(2)}%, top-1 agreement ${report.agreement.toFixed(2)}% (${n} test images); int8/fp32 latency ${(report.int8.latencyB1Ms / report.fp32.latencyB1Ms).toFixed(2)} at batch 1, ${(report.int8.latencyB64Ms / report.fp32.latencyB64Ms).toFixed(2)} at batch 64`,
  );
  const files: FileSize[] = measureFiles(
    'onnx-int8',
    [{ path: out, shown: join('export', 'model.int8.onnx') }],
    ['onnxruntime'],
  );
  writeFileAtomic(join(runDir, 'files.md'), `${filesTable(files)}\n`);
  for (const f of files)
    log(`file ${f.path}: ${f.bytes} B, gzip ${f.gzipBytes} B; loads in ${f.loadableBy.join(', ')}`);
  writeFileAtomic(
    join(runDir, 'results.json'),
    `${JSON.stringify({ name: cfg.name, direct: report, files }, null, 2)}\n`,
  );
  if (report.agreement < cfg.check.int8Agreement)
    throw new Error(
      `compress '${cfg.name}': export check failed (results kept in ${runDir}):\n  ${out}: top-1 agrees with ${file} on ${report.agreement.toFixed(2)}% of the test images (check.int8Agreement ${cfg.check.int8Agreement}; int8 target ${q.target})`,
    );
  return report;
}
