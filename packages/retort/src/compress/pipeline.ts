/**
 * The compression pipeline of one config: a distilled student (a finished run folder) -> pruning
 * (unstructured magnitude with a one-shot or AGP schedule, or structured channels) with KD
 * fine-tuning from the unpruned model -> quantization (post-training calibration, or weight QAT
 * fine-tuning with KD from the fp32 model first) -> exports (ONNX fp32 / int8 QDQ, tfjs). Every
 * stage's measurement (accuracy, parameters, non-zero weights, bytes, MACs; onnxruntime latency
 * for ONNX exports) goes to <run>/<stage>.md and into results.json.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { optimizerSchema, scheduleSchema } from '../config/experiment.js';
import type { ExperimentData } from '../data/build.js';
import { buildOfflineTask, parseTerms } from '../distill/schemes/offline.js';
import { calibrateRanges, exportOnnx } from '../export/onnx.js';
import { exportTfjs } from '../export/tfjs.js';
import { measureOrtLatency } from '../measure/latency.js';
import { modelStats, statsTable } from '../measure/model-stats.js';
import { makeOptimizer, makeSchedule } from '../train/experiment.js';
import { evaluate, fit, type TrainTask } from '../train/trainer.js';
import { writeFileAtomic } from '../util/atomic.js';
import { MaskSet } from './prune/magnitude.js';
import { sparsityAt } from './prune/schedule.js';
import { pruneChannels } from './prune/structured.js';
import { withWeightQat } from './quantize/qat.js';

export const pipelineSchema = z.strictObject({
  name: z.string(),
  /** The distilled student: a finished run folder of `retort distill` / `retort train`. */
  student: z.strictObject({ run: z.string() }),
  /** Fine-tuning after pruning and for QAT: CE + KD from the uncompressed model. */
  finetune: z
    .strictObject({
      epochs: z.number().int().min(0).default(2),
      optimizer: optimizerSchema.prefault({
        name: 'sgd',
        lr: 0.01,
        momentum: 0.9,
        nesterov: true,
        weightDecay: 0,
      }),
      /** Weight of KD (the rest is CE); 0 trains on labels only. */
      kd: z.number().min(0).max(1).default(0.9),
      T: z.number().positive().default(4),
    })
    .prefault({}),
  prune: z
    .discriminatedUnion('kind', [
      z.strictObject({
        kind: z.literal('unstructured'),
        sparsity: z.number().min(0).lt(1),
        scope: z.enum(['layer', 'global']).default('global'),
        /** one-shot: prune then fine-tune; agp: raise sparsity over the fine-tuning epochs. */
        schedule: z.enum(['one-shot', 'agp']).default('one-shot'),
      }),
      z.strictObject({
        kind: z.literal('structured'),
        fraction: z.number().min(0).lt(1),
        criterion: z.enum(['l1', 'bn-scale']).default('l1'),
      }),
    ])
    .optional(),
  quantize: z
    .strictObject({
      mode: z.enum(['ptq', 'qat']).default('ptq'),
      calibBatches: z.number().int().positive().default(8),
    })
    .optional(),
  export: z.array(z.enum(['onnx', 'onnx-int8', 'tfjs'])).default(['onnx-int8']),
});
export type PipelineConfig = z.output<typeof pipelineSchema>;

export interface StageReport {
  stage: string;
  testTop1: number;
  params: number;
  zeroWeights: number;
  macs: number;
  bytes: { fp32: number; int8: number; sparse: number };
  onnx?: { format: string; bytes: number; top1: number; latencyB1Ms: number; latencyB64Ms: number };
}

function report(stage: string, model: tfl.LayersModel, data: ExperimentData, dir: string): StageReport {
  const s = modelStats(model);
  const r: StageReport = {
    stage,
    testTop1: evaluate(model, data.test).top1,
    params: s.params,
    zeroWeights: s.layers.reduce((a, l) => a + l.zeros, 0),
    macs: s.macs,
    bytes: { fp32: s.bytes.fp32, int8: s.bytes.int8, sparse: s.bytes.sparse },
  };
  writeFileAtomic(
    join(dir, `${stage}.md`),
    `${statsTable(s, `${stage}: test top-1 ${r.testTop1.toFixed(2)}%`)}`,
  );
  return r;
}

/** Fine-tunes `model` with CE + KD from `teacher`; `afterStep` runs after every optimizer step. */
async function finetune(
  cfg: PipelineConfig,
  model: tfl.LayersModel,
  teacher: tfl.LayersModel,
  data: ExperimentData,
  runDir: string,
  wrap: (t: TrainTask) => TrainTask,
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
    data: { numExamples: data.train.data.count, numClasses: data.numClasses, seed: 0 },
  });
  const optimizer = makeOptimizer(f.optimizer);
  await fit(wrap(base), {
    epochs: f.epochs,
    optimizer,
    schedule: makeSchedule(scheduleSchema.parse({ kind: 'cosine' }), f.optimizer.lr, f.epochs),
    train: data.train,
    val: data.val,
    runDir,
    log,
    ...(onEpoch ? { onEpoch: (r) => onEpoch(r.epoch) } : {}),
  });
  optimizer.dispose();
}

export async function runPipeline(
  cfg: PipelineConfig,
  loaded: { model: tfl.LayersModel; teacher: tfl.LayersModel; data: ExperimentData },
  runDir: string,
  log: (l: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<StageReport[]> {
  const { data, teacher } = loaded;
  let model = loaded.model;
  mkdirSync(join(runDir, 'export'), { recursive: true });
  teacher.trainable = false;
  const reports: StageReport[] = [report('baseline', model, data, runDir)];
  log(`baseline: ${reports[0]!.testTop1.toFixed(2)}%`);
  let masks: MaskSet | null = null;
  if (cfg.prune?.kind === 'unstructured') {
    const p = cfg.prune;
    const agp = {
      kind: 'agp' as const,
      initial: 0,
      final: p.sparsity,
      start: 0,
      steps: Math.max(1, cfg.finetune.epochs - 1),
      every: 1,
    };
    masks = MaskSet.prune(model, p.schedule === 'agp' ? sparsityAt(agp, 0) : p.sparsity, p.scope);
    const m = masks;
    await finetune(
      cfg,
      model,
      teacher,
      data,
      join(runDir, 'prune'),
      (t) => ({
        ...t,
        release: () => {
          t.release?.();
          m.apply();
        },
      }),
      log,
      p.schedule === 'agp' ? (epoch) => m.update(sparsityAt(agp, epoch), p.scope) : undefined,
    );
    m.update(p.sparsity, p.scope);
    reports.push(report('prune', model, data, runDir));
  } else if (cfg.prune?.kind === 'structured') {
    const r = pruneChannels(model, { fraction: cfg.prune.fraction, criterion: cfg.prune.criterion });
    model = r.model;
    await finetune(cfg, model, teacher, data, join(runDir, 'prune'), (t) => t, log);
    reports.push(report('prune', model, data, runDir));
  }
  let quant: ReturnType<typeof calibrateRanges> | undefined;
  if (cfg.quantize) {
    if (cfg.quantize.mode === 'qat') {
      let qat: ReturnType<typeof withWeightQat> | null = null;
      const m = masks;
      await finetune(
        cfg,
        model,
        teacher,
        data,
        join(runDir, 'qat'),
        (t) => {
          qat = withWeightQat(
            m
              ? {
                  ...t,
                  release: () => {
                    t.release?.();
                    m.apply();
                  },
                }
              : t,
            model,
          );
          return qat;
        },
        log,
      );
      (qat as ReturnType<typeof withWeightQat> | null)?.finish();
      masks?.apply();
    }
    const batches: tf.Tensor[] = [];
    for (const b of data.trainPlain.epoch()) {
      if (batches.length >= cfg.quantize.calibBatches) break;
      batches.push(tf.tensor4d(b.x, [b.n, ...data.shape]));
    }
    quant = calibrateRanges(model, batches);
    tf.dispose(batches);
  }
  for (const format of cfg.export) {
    if (format === 'tfjs') {
      await exportTfjs(model, join(runDir, 'export', 'tfjs'));
      continue;
    }
    const bytes = exportOnnx(
      model,
      format === 'onnx-int8' ? { quant: quant ?? calibrateRanges(model, [firstBatch(data)]) } : {},
    );
    writeFileAtomic(join(runDir, 'export', `model${format === 'onnx-int8' ? '.int8' : ''}.onnx`), bytes);
    const top1 = await onnxTop1(bytes, data);
    const b1 = await measureOrtLatency(bytes, data.shape, 1);
    const b64 = await measureOrtLatency(bytes, data.shape, 64);
    const r = report(`export-${format}`, model, data, runDir);
    r.onnx = { format, bytes: bytes.length, top1, latencyB1Ms: b1.medianMs, latencyB64Ms: b64.medianMs };
    reports.push(r);
    log(
      `${format}: onnxruntime top-1 ${top1.toFixed(2)}%, ${bytes.length} B, batch 64 ${b64.medianMs.toFixed(2)} ms`,
    );
  }
  writeFileAtomic(
    join(runDir, 'results.json'),
    `${JSON.stringify({ name: cfg.name, stages: reports }, null, 2)}\n`,
  );
  return reports;
}

function firstBatch(data: ExperimentData): tf.Tensor {
  const b = data.trainPlain.epoch().next().value!;
  return tf.tensor4d(b.x, [b.n, ...data.shape]);
}

async function onnxTop1(bytes: Uint8Array, data: ExperimentData): Promise<number> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(bytes);
  let correct = 0;
  let n = 0;
  for (const b of data.test.epoch()) {
    const res = await session.run({ input: new ort.Tensor('float32', b.x, [b.n, ...data.shape]) });
    const out = res['output']!.data as Float32Array;
    const k = data.numClasses;
    for (let i = 0; i < b.n; i++) {
      let best = 0;
      for (let j = 1; j < k; j++) if (out[i * k + j]! > out[i * k + best]!) best = j;
      if (best === b.y[i]) correct++;
    }
    n += b.n;
  }
  await session.release();
  return (100 * correct) / n;
}
