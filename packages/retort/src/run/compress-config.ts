/**
 * The config of `retort compress` (a pipeline file): what to start from (a Retort run, or an ONNX /
 * tfjs model with its data), the stages, the exports and their checks; and the stage combinations
 * that are refused.
 */
import { z } from 'zod';
import { dataSchema, modelFileSchema, optimizerSchema, runNameSchema } from '../config/experiment.js';

export const pipelineSchema = z
  .strictObject({
    name: runNameSchema,
    /** The distilled student: a finished run folder of `retort distill` / `retort train`. */
    student: z.strictObject({ run: z.string() }).optional(),
    /** Or a model you already have: an ONNX CNN or a tfjs layers model (with `data`). */
    model: modelFileSchema.optional(),
    /** The data a `model` was trained on (a `student` run brings its own). */
    data: dataSchema.optional(),
    /** Seed of the data order of a `model`'s fine-tuning (a `student` run brings its own). */
    seed: z.number().int().min(0).default(0),
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
          /** Kept channels per group rounded to a multiple of this (8 suits onnxruntime's blocked convs). */
          roundTo: z.number().int().min(1).default(1),
        }),
      ])
      .optional(),
    /** Truncated-SVD factorization of convs and dense layers (lowrank-model.ts), then fine-tuning. */
    lowrank: z
      .strictObject({
        rank: z.union([
          z.strictObject({ energy: z.number().gt(0).max(1) }),
          z.strictObject({ sizeFraction: z.number().gt(0).max(1) }),
        ]),
        /** Keep the stem conv and the classifier whole: few weights, much of the accuracy. */
        skipEdges: z.boolean().default(true),
        /** Factorize a layer only when that saves at least this fraction of its weights. */
        minSaving: z.number().lt(1).default(0.1),
      })
      .optional(),
    /** k-means weight sharing per kernel (cluster-model.ts), then codebook fine-tuning. */
    cluster: z
      .strictObject({
        clusters: z.number().int().min(2).max(65536),
        /**
         * How a centroid moves with its weights' updates: 'mean' (default) is a step no larger than
         * one weight's; 'sum' is Han et al.'s summed gradient, whose step grows with the cluster.
         */
        reduce: z.enum(['sum', 'mean']).default('mean'),
      })
      .optional(),
    quantize: z
      .strictObject({
        mode: z.enum(['ptq', 'qat']).default('ptq'),
        calibBatches: z.number().int().positive().default(8),
        /** int8 weight scales of the ONNX export: one per output channel, or one per tensor. */
        weights: z.enum(['per-channel', 'per-tensor']).default('per-channel'),
        /**
         * Which CPUs the int8 exports are right on (export/onnx/target.ts): portable (default; 7-bit
         * weights, exact on every x86-64 and ARM64), vnni or arm64 (full 8-bit weights). Weight QAT
         * trains on the same grid.
         */
        target: z.enum(['portable', 'vnni', 'arm64']).default('portable'),
        /**
         * qat: fake-quantize the activations too (quantize/act-qat.ts); the int8 export then uses
         * the ranges observed in training instead of calibrating after it.
         */
        activations: z.boolean().default(false),
        /**
         * Quantize the ONNX file of `model` itself (export/onnx/ptq.ts: no import, no training), as
         * onnxruntime's quantizer does; needs mode ptq and no other stage, and exports onnx-int8.
         */
        direct: z.boolean().default(false),
      })
      .refine((q) => !q.activations || q.mode === 'qat', {
        message: 'quantize.activations needs mode qat (ptq calibrates the activations after training)',
        path: ['activations'],
      })
      .optional(),
    /**
     * onnx: fp32; onnx-int8: static QDQ (activations calibrated); onnx-int8-dynamic: int8 weights,
     * activations quantized per run by onnxruntime (no calibration); tfjs: layers-model format, fp32
     * weights; tfjs-uint8 / tfjs-uint16: the same with tfjs's own weight quantization (min/scale per
     * tensor, dequantized on load); rtz: Retort's bundle, every weight in its smallest exact encoding
     * (k-means codebooks, sparse, int8), loaded back by loadBundle into the identical model.
     */
    export: z
      .array(z.enum(['onnx', 'onnx-int8', 'onnx-int8-dynamic', 'tfjs', 'tfjs-uint8', 'tfjs-uint16', 'rtz']))
      .default(['onnx-int8']),
    /**
     * Every ONNX export is run in onnxruntime on the test set against the exported tfjs model: an fp32
     * export whose logits differ by more than fp32MaxDiff, or an int8 one whose top-1 agrees with the
     * model's on fewer than int8Agreement % of the images, fails the run (after results.json and the
     * exports are written, so nothing is lost).
     */
    check: z
      .strictObject({
        fp32MaxDiff: z.number().positive().default(1e-4),
        int8Agreement: z.number().min(0).max(100).default(99),
      })
      .default({ fp32MaxDiff: 1e-4, int8Agreement: 99 }),
  })
  .superRefine((c, ctx) => {
    if ((c.student === undefined) === (c.model === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `give exactly one of student (a Retort run) or model (an onnx or tfjs file); got ${c.student === undefined ? 'none' : 'both'}`,
      });
    if (c.model !== undefined && c.data === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['data'],
        message: 'required with model: the data the model was trained on',
      });
    if (c.student !== undefined && c.data !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['data'],
        message: "applies to model only (a student run's data is its own)",
      });
    if (c.quantize?.direct) {
      const why = [
        c.model?.onnx === undefined ? 'model.onnx' : '',
        c.quantize.mode !== 'ptq' ? 'quantize.mode ptq' : '',
        c.prune || c.lowrank || c.cluster ? 'no prune, lowrank or cluster stage' : '',
        c.export.some((f) => f !== 'onnx-int8') ? 'export [onnx-int8] only' : '',
      ].filter((w) => w !== '');
      if (why.length > 0)
        ctx.addIssue({
          code: 'custom',
          path: ['quantize', 'direct'],
          message: `quantizes the ONNX file as it is, so it needs ${why.join(', ')}`,
        });
    }
  });
export type PipelineConfig = z.output<typeof pipelineSchema>;

/** Stage combinations that would undo each other, refused with the reason. */
export function checkPipeline(cfg: PipelineConfig): void {
  const bad = (why: string) => {
    throw new Error(`compress '${cfg.name}': ${why}`);
  };
  if (cfg.lowrank && cfg.prune?.kind === 'unstructured')
    bad('lowrank after unstructured pruning would refill the zeros (the factors are dense); use one of them');
  if (cfg.cluster && cfg.quantize?.mode === 'qat')
    bad('quantize.mode qat would re-quantize the shared weights off their codebooks; use ptq with cluster');
}
