/**
 * The config of `retort compress` (a pipeline file): what to start from (a Retort run, or an ONNX /
 * tfjs model with its data), the stages, the exports and their checks. Each stage section is that
 * stage's own schema (compress/stages/), under the key the stage reads; the stages themselves refuse
 * combinations that would undo each other (StageDescriptor.refusesAfter).
 */
import { z } from 'zod';
import { clusterSchema } from '../compress/stages/cluster.js';
import { hashSchema } from '../compress/stages/hash.js';
import { lotterySchema } from '../compress/stages/lottery.js';
import { lowrankSchema } from '../compress/stages/lowrank.js';
import { mixedPrecisionSchema } from '../compress/stages/mixed-precision.js';
import { pruneMagnitudeSchema } from '../compress/stages/prune-magnitude.js';
import { pruneStructuredSchema } from '../compress/stages/prune-structured.js';
import { quantizeSchema } from '../compress/stages/quantize-ptq.js';
import { riglSchema } from '../compress/stages/rigl.js';
import { tuckerSchema } from '../compress/stages/tucker.js';
import {
  dataSchema,
  modelFileSchema,
  optimizerSchema,
  runNameSchema,
  scheduleSchema,
} from '../config/experiment.js';

/** The export formats, of a pipeline and of `retort export` alike. */
export const EXPORT_FORMATS = [
  'onnx',
  'onnx-int8',
  'onnx-int8-dynamic',
  'onnx-fp16',
  'tfjs',
  'tfjs-uint8',
  'tfjs-uint16',
  'tfjs-fp16',
  'rtz',
] as const;

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
        /**
         * Learning-rate schedule over each fine-tuning (cosine by default); e.g. a warm-up epoch,
         * `{ kind: cosine, warmupEpochs: 1 }`, for a stage that trains from a fresh initialisation.
         */
        schedule: scheduleSchema
          // Cosine is the fine-tuning's default kind also when only other keys are given.
          .extend({ kind: scheduleSchema.shape.kind.unwrap().default('cosine') })
          .prefault({}),
        /** Weight of KD (the rest is CE); 0 trains on labels only. */
        kd: z.number().min(0).max(1).default(0.9),
        T: z.number().positive().default(4),
      })
      .prefault({}),
    /** Lottery tickets: iterative magnitude pruning with rewinding (compress/stages/lottery.ts); not with prune. */
    lottery: lotterySchema.optional(),
    /** RigL: sparse training from scratch with drop/grow of connections (compress/stages/rigl.ts); not with prune or lottery. */
    rigl: riglSchema.optional(),
    /** Unstructured magnitude pruning or structured channel pruning, then fine-tuning. */
    prune: z.discriminatedUnion('kind', [pruneMagnitudeSchema, pruneStructuredSchema]).optional(),
    /** Truncated-SVD factorization of convs and dense layers (lowrank-model.ts), then fine-tuning. */
    lowrank: lowrankSchema.optional(),
    /** Tucker-2 decomposition of k x k convs (tucker-model.ts; Kim et al., ICLR 2016), then fine-tuning. */
    tucker: tuckerSchema.optional(),
    /** HashedNets: kernels as shared, sign-hashed buckets (hashed-model.ts), then fine-tuning. */
    hash: hashSchema.optional(),
    /** k-means weight sharing per kernel (cluster-model.ts), then codebook fine-tuning. */
    cluster: clusterSchema.optional(),
    /** Per-layer 8/6/4-bit kernels chosen by a sensitivity scan under a size budget, then QAT (compress/stages/mixed-precision.ts). */
    mixedPrecision: mixedPrecisionSchema.optional(),
    /** int8: post-training calibration (ptq) or quantization-aware training (qat). */
    quantize: quantizeSchema.optional(),
    /**
     * onnx: fp32; onnx-int8: static QDQ (activations calibrated); onnx-int8-dynamic: int8 weights,
     * activations quantized per run by onnxruntime (no calibration); tfjs: layers-model format, fp32
     * weights; tfjs-uint8 / tfjs-uint16: the same with tfjs's own weight quantization (min/scale per
     * tensor, dequantized on load); tfjs-fp16: the same with float16 weights (widened on load);
     * onnx-fp16: float16 weights cast to float in the graph (export/onnx/fp16.ts); rtz: Retort's
     * bundle, every weight in its smallest exact encoding (k-means codebooks, sparse, int8), loaded
     * back by loadBundle into the identical model.
     */
    export: z.array(z.enum(EXPORT_FORMATS)).default(['onnx-int8']),
    /**
     * Every ONNX export is run in onnxruntime on the test set against the exported tfjs model: an fp32
     * export whose logits differ by more than fp32MaxDiff, an fp16 one whose logits differ by more
     * than fp16MaxRelDiff times the largest |logit| of the tfjs model, or an int8 one whose top-1
     * agrees with the model's on fewer than int8Agreement % of the images, fails the run (after
     * results.json and the exports are written, so nothing is lost). fp16MaxRelDiff: fp16 weights
     * are each off by up to 2^-11 (4.9e-4) relative, which moved ResNet-8's logits by 3e-4 of their
     * range; 1e-2 leaves room for deeper models while a wrong weight still fails (errors of order 1).
     */
    check: z
      .strictObject({
        fp32MaxDiff: z.number().positive().default(1e-4),
        fp16MaxRelDiff: z.number().positive().default(1e-2),
        int8Agreement: z.number().min(0).max(100).default(99),
      })
      .default({ fp32MaxDiff: 1e-4, fp16MaxRelDiff: 1e-2, int8Agreement: 99 }),
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
        c.prune || c.lottery || c.rigl || c.lowrank || c.tucker || c.hash || c.cluster || c.mixedPrecision
          ? 'no prune, lowrank or cluster stage'
          : '',
        c.export.some((f) => f !== 'onnx-int8') ? 'export [onnx-int8] only' : '',
      ].filter((w) => w !== '');
      if (why.length > 0)
        ctx.addIssue({
          code: 'custom',
          path: ['quantize', 'direct'],
          message: `quantizes the ONNX file as it is, so it needs ${why.join(', ')}`,
        });
    }
    // The int8 exports keep mixedPrecision's grids only with its target and per-channel scales.
    const mp = c.mixedPrecision;
    if (mp && c.quantize && (c.quantize.target !== mp.target || c.quantize.weights !== 'per-channel'))
      ctx.addIssue({
        code: 'custom',
        path: ['quantize'],
        message: `with mixedPrecision the int8 exports need target ${mp.target} (mixedPrecision.target) and per-channel weights, got target ${c.quantize.target} and ${c.quantize.weights} weights`,
      });
  });
export type PipelineConfig = z.output<typeof pipelineSchema>;
