/**
 * The compression pipeline of one config (compress-config.ts): a distilled student or a model the
 * user brought (compress-inputs.ts) -> pruning (unstructured magnitude with a one-shot or AGP
 * schedule, or structured channels) -> low-rank factorization -> k-means weight sharing ->
 * mixed-precision weights -> quantization (post-training calibration, or weight QAT) -> exports
 * (ONNX fp32 / fp16 weights / int8 QDQ, tfjs fp32 / fp16 / uint8 / uint16, .rtz bundle). Every stage that changes weights is fine-tuned with CE + KD
 * from the uncompressed model. Every stage's measurement (accuracy, agreement with the
 * uncompressed model, parameters, non-zero weights, bytes, MACs; onnxruntime accuracy and latency
 * for ONNX exports) goes to <run>/<stage>.md and into results.json; every exported file's size on
 * disk and gzip size to files.md. The stages are those of compress/stages/registry.ts, run in its
 * order when the config has their section; the runner serves what each declares.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { cpuInfo } from 'retort-kd-native';
import { type MaskSet, prunableKernels } from '../compress/prune/magnitude.js';
import { fakeQuantKernel } from '../compress/quantize/qat.js';
import { planStages } from '../compress/stages/registry.js';
import type {
  AnyStageDescriptor,
  Int8Settings,
  StageContext,
  StageNeeds,
  WeightBits,
} from '../compress/stages/types.js';
import type { ExperimentData } from '../data/build.js';
import { BatchLoader, takeBatches } from '../data/loader.js';
import { buildOfflineTask, parseTerms, valSplitOf } from '../distill/schemes/offline.js';
import { calibrateRanges, exportOnnx, type QuantSpec, targetNotice, weightQmax } from '../export/onnx.js';
import { writeBundle } from '../export/rtz.js';
import { sidecarFor, writeSidecar } from '../export/sidecar.js';
import { exportTfjs, WEIGHTS_FILE } from '../export/tfjs.js';
import { type FileSize, filesTable, measureFiles } from '../measure/files.js';
import { measureOrtLatencies } from '../measure/latency.js';
import { modelStats, statsTable } from '../measure/model-stats.js';
import { checkOnnx } from '../measure/onnx-check.js';
import { makeOptimizer, makeSchedule } from '../train/from-config.js';
import { evaluate, fit, type LrOptimizer, type TrainTask } from '../train/trainer.js';
import { writeFileAtomic } from '../util/atomic.js';

import type { PipelineConfig } from './compress-config.js';

export { type PipelineConfig, pipelineSchema } from './compress-config.js';

export interface StageReport {
  stage: string;
  testTop1: number;
  /** % of test images where the model's top-1 equals the uncompressed model's. */
  originalAgreement: number;
  params: number;
  /** Weights the stage's compressed form stores, when fewer than params (StageOutcome.storedWeights). */
  storedWeights?: number;
  /** Kernel bits by layer and packed bytes, when a stage chose them (StageOutcome.weightBits). */
  weightBits?: WeightBits;
  zeroWeights: number;
  macs: number;
  /** clustered: indices + codebooks, when the model is clustered (null otherwise). */
  bytes: { fp32: number; int8: number; sparse: number; clustered: number | null };
  onnx?: {
    format: string;
    bytes: number;
    top1: number;
    /** % of test images where onnxruntime's top-1 equals the exported tfjs model's. */
    agreement: number;
    /** Largest |onnxruntime logit - tfjs logit| over the test set. */
    maxAbsDiff: number;
    latencyB1Ms: number;
    latencyB64Ms: number;
    /** int8 exports: the target they were written for (export/onnx/target.ts). */
    int8Target?: string;
    /** % of test images where onnxruntime's top-1 equals the uncompressed model's. */
    originalAgreement?: number;
  };
}

async function report(
  stage: string,
  model: tfl.LayersModel,
  data: ExperimentData,
  dir: string,
  original: Int32Array | undefined,
  clusters: number | null = null,
): Promise<StageReport> {
  const s = modelStats(model, clusters);
  const e = await evaluate(model, data.test, { predictions: true });
  const r: StageReport = {
    stage,
    testTop1: e.top1,
    originalAgreement: original ? agreementOf(e.predicted!, original) : 100,
    params: s.params,
    zeroWeights: s.layers.reduce((a, l) => a + l.zeros, 0),
    macs: s.macs,
    bytes: { fp32: s.bytes.fp32, int8: s.bytes.int8, sparse: s.bytes.sparse, clustered: s.bytes.clustered },
  };
  writeFileAtomic(
    join(dir, `${stage}.md`),
    `${statsTable(s, `${stage}: test top-1 ${r.testTop1.toFixed(2)}%`)}`,
  );
  return r;
}

/** % of positions where two top-1 lists agree. */
function agreementOf(a: Int32Array, b: Int32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return (100 * same) / Math.max(1, a.length);
}

/** Fine-tunes `model` with CE + KD from `teacher`; `afterStep` runs after every optimizer step. */
async function finetune(
  cfg: PipelineConfig,
  model: tfl.LayersModel,
  teacher: tfl.LayersModel,
  data: ExperimentData,
  runDir: string,
  wrap: (t: TrainTask, optimizer: LrOptimizer) => TrainTask,
  log: (l: string) => void,
  onEpoch?: (epoch: number) => void,
): Promise<void> {
  const f = cfg.finetune;
  if (f.epochs === 0) return;
  const terms = parseTerms(
    [{ name: 'ce', weight: 1 - f.kd }, ...(f.kd > 0 ? [{ name: 'kd', weight: f.kd, T: f.T }] : [])],
    'finetune',
  );
  const base = buildOfflineTask({
    student: model,
    teacher,
    terms,
    data: {
      numExamples: data.train instanceof BatchLoader ? data.train.data.count : 0,
      numClasses: data.numClasses,
      batchSize: data.train.batchSize,
      seed: 0,
    },
  });
  const optimizer = makeOptimizer(f.optimizer);
  await fit(wrap(base, optimizer), {
    epochs: f.epochs,
    optimizer,
    schedule: makeSchedule(f.schedule, f.optimizer.lr, f.epochs),
    train: data.train,
    val: data.val,
    valSplit: valSplitOf(data),
    runDir,
    log,
    ...(onEpoch ? { onEpoch: (r) => onEpoch(r.epoch) } : {}),
  });
  optimizer.dispose();
}

/** What runPipeline hands every stage's context. */
interface StageEnv {
  cfg: PipelineConfig;
  teacher: tfl.LayersModel;
  data: ExperimentData;
  runDir: string;
  log: (l: string) => void;
}

/** The context a stage runs with: the model so far and the services its `needs` declare. */
function serve(
  stage: AnyStageDescriptor,
  env: StageEnv,
  model: tfl.LayersModel,
  masks: MaskSet | null,
): StageContext {
  const need = (what: keyof StageNeeds, fn: string) => {
    if (!stage.needs[what])
      throw new Error(`compression stage '${stage.name}' calls ctx.${fn} but does not declare needs.${what}`);
  };
  const { cfg, teacher, data, runDir, log } = env;
  return {
    model,
    masks,
    epochs: cfg.finetune.epochs,
    ...(data.train.length === undefined ? {} : { stepsPerEpoch: data.train.length }),
    log,
    async finetune(m, wrap = (t) => t, onEpoch, opts) {
      need('finetune', 'finetune');
      // A control model trains apart, in the folder of its report row (<label>-<name>).
      const folder = opts?.control === undefined ? stage.label : `${stage.label}-${opts.control}`;
      await finetune(cfg, m, teacher, data, join(runDir, folder), wrap, log, onEpoch);
    },
    async calibrate(m, n) {
      need('calibration', 'calibrate');
      const batches = (await takeBatches(data.trainPlain, n)).map((b) =>
        tf.tensor4d(b.x, [b.n, ...data.shape]),
      );
      const quant = calibrateRanges(m, batches);
      tf.dispose(batches);
      return quant;
    },
    async batches(n) {
      need('batches', 'batches');
      return (await takeBatches(data.trainPlain, n)).map((b) => tf.tensor4d(b.x, [b.n, ...data.shape]));
    },
  };
}

export async function runPipeline(
  cfg: PipelineConfig,
  loaded: { model: tfl.LayersModel; teacher: tfl.LayersModel; data: ExperimentData },
  runDir: string,
  log: (l: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<StageReport[]> {
  const plan = planStages(cfg, cfg.name);
  const { data, teacher } = loaded;
  let model = loaded.model;
  mkdirSync(join(runDir, 'export'), { recursive: true });
  teacher.trainable = false;
  // The uncompressed model's answers: every stage and export reports how often it still agrees.
  const original = (await evaluate(teacher, data.test, { predictions: true })).predicted!;
  const reports: StageReport[] = [await report('baseline', model, data, runDir, original)];
  log(`baseline: ${reports[0]!.testTop1.toFixed(2)}%`);
  // What the stages leave for the later ones and for the exports.
  let masks: MaskSet | null = null;
  let clusters: number | null = null;
  let quant: QuantSpec | undefined;
  // The int8 settings of the exports come from the config alone (the stage that quantizes declares
  // them), so they are known before that stage runs, and without one.
  const int8 = plan.flatMap(({ stage, config }) => (stage.int8 ? [stage.int8(config)] : []))[0];
  const int8Target = int8?.target ?? 'portable';
  let announced = false;
  const announce = () => {
    if (announced || !cfg.export.some((f) => f.startsWith('onnx-int8'))) return;
    announced = true;
    const notice = targetNotice(int8Target, cpuInfo());
    log(notice.info);
    if (notice.warning) log(`warning: ${notice.warning}`);
  };
  const env: StageEnv = { cfg, teacher, data, runDir, log };
  // The smaller form of the model that the .rtz stores (StageOutcome.bundle), while it still holds.
  let bundle: tfl.LayersModel | null = null;
  for (const { stage, config } of plan) {
    // Announced before the stage that quantizes (QAT trains on the target's grid), else before the exports.
    if (stage.int8) announce();
    bundle?.dispose();
    bundle = null;
    const out = await stage.run(serve(stage, env, model, masks), config);
    bundle = out.bundle ?? null;
    model = out.model ?? model;
    masks = out.masks ?? masks;
    clusters = out.clusters ?? clusters;
    quant = out.ranges ?? quant;
    if (stage.measured) {
      const r = await report(stage.label, model, data, runDir, original, clusters);
      reports.push({
        ...r,
        ...(out.storedWeights === undefined ? {} : { storedWeights: out.storedWeights }),
        ...(out.weightBits === undefined ? {} : { weightBits: out.weightBits }),
      });
    }
    // Comparison models (lottery's random re-initialisation): one row each, then freed.
    for (const c of out.controls ?? []) {
      reports.push(await report(`${stage.label}-${c.name}`, c.model, data, runDir, original, clusters));
      c.model.dispose();
    }
  }
  announce();
  const onnxOut: { format: string; bytes: Uint8Array; report: StageReport }[] = [];
  const files: FileSize[] = [];
  const shown = (...parts: string[]) => ({ path: join(runDir, ...parts), shown: join(...parts) });
  for (const format of cfg.export) {
    if (format === 'tfjs' || format === 'tfjs-uint8' || format === 'tfjs-uint16' || format === 'tfjs-fp16') {
      const dir = join(runDir, 'export', format);
      await exportTfjs(model, dir, format === 'tfjs' ? {} : { quantize: TFJS_QUANTIZE[format] });
      writeSidecar(join(dir, 'retort.json'), sidecarFor('tfjs', 'model.json', data));
      files.push(
        ...measureFiles(
          format,
          [shown('export', format, 'model.json'), shown('export', format, WEIGHTS_FILE)],
          ['tfjs', 'retort'],
        ),
      );
      continue;
    }
    if (format === 'rtz') {
      // With int8 settings the bundle stores the model's kernels snapped to int8; a stage's smaller
      // form (out.bundle) only without them.
      const r =
        bundle && !int8
          ? await writeBundle(bundle, join(runDir, 'export', 'model.rtz'), { overwrite: true })
          : await withInt8Kernels(model, int8, () =>
              writeBundle(model, join(runDir, 'export', 'model.rtz'), { overwrite: true }),
            );
      const by = new Map<string, number>();
      for (const t of r.tensors) by.set(t.encoding, (by.get(t.encoding) ?? 0) + 1);
      log(`rtz: ${[...by].map(([e, n]) => `${n} ${e}`).join(', ')} tensors`);
      files.push(...measureFiles('rtz', [shown('export', 'model.rtz')], ['retort']));
      continue;
    }
    const weights = int8?.weights ?? 'per-channel';
    const bytes = exportOnnx(
      model,
      format === 'onnx-int8'
        ? { quant: quant ?? calibrateRanges(model, [await firstBatch(data)]), weights, target: int8Target }
        : format === 'onnx-int8-dynamic'
          ? { dynamic: true, weights, target: int8Target }
          : { fp16: format === 'onnx-fp16' },
    );
    writeFileAtomic(join(runDir, 'export', `model${SUFFIX[format]}.onnx`), bytes);
    // Retort imports fp32 ONNX CNNs (models/onnx-import.ts), not QDQ graphs.
    files.push(
      ...measureFiles(
        format,
        [shown('export', `model${SUFFIX[format]}.onnx`)],
        format === 'onnx' ? ['onnxruntime', 'retort'] : ['onnxruntime'],
      ),
    );
    writeSidecar(
      join(runDir, 'export', `model${SUFFIX[format]}.onnx.json`),
      sidecarFor(format, `model${SUFFIX[format]}.onnx`, data),
    );
    onnxOut.push({
      format,
      bytes,
      report: await report(`export-${format}`, model, data, runDir, original, clusters),
    });
  }
  bundle?.dispose();
  // Largest |tfjs logit| over the test set: the scale of the fp16 check.
  let logitScale = 0;
  if (onnxOut.length > 0) {
    // All ONNX exports timed interleaved in one measurement, so an int8 / fp32 ratio compares
    // the two under the same machine load.
    const timing = { rounds: 5, repeats: 10, warmup: 3 };
    const all = onnxOut.map((o) => o.bytes);
    const b1 = await measureOrtLatencies(all, data.shape, 1, timing);
    const b64 = await measureOrtLatencies(all, data.shape, 64, timing);
    const checks = await checkOnnx(
      onnxOut.map((o) => o.bytes),
      model,
      data,
      original,
    );
    for (const [i, o] of onnxOut.entries()) {
      const c = checks[i]!;
      logitScale = c.maxAbsRef;
      o.report.onnx = {
        format: o.format,
        bytes: o.bytes.length,
        top1: c.top1,
        agreement: c.agreement,
        maxAbsDiff: c.maxAbsDiff,
        latencyB1Ms: b1[i]!.medianMs,
        latencyB64Ms: b64[i]!.medianMs,
        ...(o.format.startsWith('onnx-int8') ? { int8Target } : {}),
        ...(c.originalAgreement !== undefined ? { originalAgreement: c.originalAgreement } : {}),
      };
      reports.push(o.report);
      log(
        `${o.format}: onnxruntime top-1 ${c.top1.toFixed(2)}% (top-1 agreement with tfjs ${c.agreement.toFixed(2)}%, with the uncompressed model ${c.originalAgreement?.toFixed(2)}%, max |logit diff| ${c.maxAbsDiff.toExponential(2)}), ${o.bytes.length} B, batch 64 ${b64[i]!.medianMs.toFixed(2)} ms`,
      );
    }
  }
  for (const r of reports)
    log(
      `${r.stage}: test top-1 ${r.testTop1.toFixed(2)}%, top-1 equal to the uncompressed model's on ${r.originalAgreement.toFixed(2)}% of the test images, ${r.params} parameters${r.storedWeights === undefined ? '' : ` (${r.storedWeights} stored)`}${r.weightBits === undefined ? '' : `, kernels packed at the chosen bits ${r.weightBits.packedBytes} B (all 8-bit ${r.weightBits.int8Bytes} B)`}`,
    );
  if (files.length > 0) {
    writeFileAtomic(join(runDir, 'files.md'), `${filesTable(files)}\n`);
    for (const f of files)
      log(`file ${f.path}: ${f.bytes} B, gzip ${f.gzipBytes} B; loads in ${f.loadableBy.join(', ')}`);
  }
  writeFileAtomic(
    join(runDir, 'results.json'),
    `${JSON.stringify({ name: cfg.name, stages: reports, files }, null, 2)}\n`,
  );
  const failed = reports.flatMap((r) => {
    const o = r.onnx;
    if (!o) return [];
    const file = join(runDir, 'export', `model${SUFFIX[o.format as OnnxFormat]}.onnx`);
    if (o.format === 'onnx' && o.maxAbsDiff > cfg.check.fp32MaxDiff)
      return [
        `${file}: onnxruntime logits differ from tfjs by ${o.maxAbsDiff.toExponential(2)} (check.fp32MaxDiff ${cfg.check.fp32MaxDiff})`,
      ];
    if (o.format === 'onnx-fp16') {
      const rel = o.maxAbsDiff / Math.max(logitScale, Number.MIN_VALUE);
      return rel > cfg.check.fp16MaxRelDiff
        ? [
            `${file}: onnxruntime logits differ from tfjs by ${o.maxAbsDiff.toExponential(2)}, ${rel.toExponential(2)} of the largest |logit| (check.fp16MaxRelDiff ${cfg.check.fp16MaxRelDiff})`,
          ]
        : [];
    }
    if (o.format !== 'onnx' && o.agreement < cfg.check.int8Agreement)
      return [
        `${file}: top-1 agrees with the fp32 tfjs model on ${o.agreement.toFixed(2)}% of the test images (check.int8Agreement ${cfg.check.int8Agreement}; int8 target ${int8Target}${int8Target !== 'portable' && cpuInfo().arch === 'x64' && !cpuInfo().vnni ? ', full 8-bit weights on a CPU without VNNI' : ''})`,
      ];
    return [];
  });
  if (failed.length > 0)
    throw new Error(
      `compress '${cfg.name}': export check failed (results kept in ${runDir}):\n  ${failed.join('\n  ')}`,
    );
  return reports;
}

/**
 * Runs `f` with the model's kernels on the int8 grid the int8 ONNX export uses (per output channel
 * or per tensor, the target's qmax) when the pipeline quantizes (`int8`: a stage's settings), then
 * restores the float weights: a bundle of a quantized model stores the int8 kernels as int8, the
 * weights that model really has. Without quantization the kernels stay as they are.
 */
async function withInt8Kernels<T>(
  model: tfl.LayersModel,
  int8: Int8Settings | undefined,
  f: () => Promise<T>,
): Promise<T> {
  if (int8 === undefined) return f();
  const qmax = weightQmax(int8.target);
  const perTensor = int8.weights === 'per-tensor';
  const kernels = prunableKernels(model).map((k) => k.kernel);
  const saved = kernels.map((k) => tf.keep(k.clone()));
  kernels.forEach((k, i) => {
    // One scale for the whole tensor is also one per channel (the same for all): stored as int8.
    k.assign(tf.tidy(() => fakeQuantKernel(saved[i]!, qmax, perTensor)));
  });
  try {
    return await f();
  } finally {
    kernels.forEach((k, i) => {
      k.assign(saved[i]!);
    });
    tf.dispose(saved);
  }
}

type OnnxFormat = 'onnx' | 'onnx-int8' | 'onnx-int8-dynamic' | 'onnx-fp16';
const SUFFIX: Record<OnnxFormat, string> = {
  onnx: '',
  'onnx-int8': '.int8',
  'onnx-int8-dynamic': '.int8-dynamic',
  'onnx-fp16': '.fp16',
};
/** tfjs's weight quantization of each quantized tfjs format. */
const TFJS_QUANTIZE = { 'tfjs-uint8': 'uint8', 'tfjs-uint16': 'uint16', 'tfjs-fp16': 'float16' } as const;

async function firstBatch(data: ExperimentData): Promise<tf.Tensor> {
  const [b] = await takeBatches(data.trainPlain, 1);
  if (!b) throw new Error('compress: the training split has no batches');
  return tf.tensor4d(b.x, [b.n, ...data.shape]);
}
