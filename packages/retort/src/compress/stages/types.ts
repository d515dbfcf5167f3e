/**
 * The contract between a compression stage and the pipeline that runs it (run/compress.ts). A stage
 * declares which section of the pipeline config it reads, what it needs (fine-tuning with KD from
 * the uncompressed model, calibration batches) and what it leaves for later stages and the exports;
 * the runner serves those declarations in registry order (registry.ts) and never asks which stage it
 * is running.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { z } from 'zod';
import type { Int8Target, QuantSpec, WeightGranularity } from '../../export/onnx.js';
import type { LrOptimizer, TrainTask } from '../../train/trainer.js';
import type { MaskSet } from '../prune/magnitude.js';

/** What a stage asks the runner for; absent means "not needed", and asking for it anyway throws. */
export interface StageNeeds {
  /** ctx.finetune: CE + KD from the uncompressed model (the teacher), with the pipeline's settings. */
  readonly finetune?: true;
  /** ctx.calibrate: int8 activation ranges from training batches. */
  readonly calibration?: true;
  /** ctx.batches: plain training inputs, for stages that measure the model (a sensitivity scan). */
  readonly batches?: true;
}

/** The int8 settings a quantizing stage hands to the int8 exports (ONNX QDQ and the .rtz bundle). */
export interface Int8Settings {
  /** Which CPUs the int8 files are right on (export/onnx/target.ts); fixes the weights' qmax. */
  readonly target: Int8Target;
  /** One int8 weight scale per output channel, or one per tensor. */
  readonly weights: WeightGranularity;
}

/** What the runner serves a stage while it runs. */
export interface StageContext {
  /** The model as the earlier stages left it. */
  readonly model: tfl.LayersModel;
  /**
   * Unstructured sparsity masks an earlier stage left (null when none): a stage that trains
   * re-applies them after every step so that the pruned zeros stay zero.
   */
  readonly masks: MaskSet | null;
  /** Fine-tuning epochs of the pipeline (finetune.epochs; 0: ctx.finetune returns at once). */
  readonly epochs: number;
  /**
   * Optimizer steps per fine-tuning epoch (the training loader's batches), for stages whose schedule
   * runs per step (RigL's cosine drop fraction); absent where the loader does not know it before its
   * first pass (a stream).
   */
  readonly stepsPerEpoch?: number;
  readonly log: (line: string) => void;
  /**
   * Fine-tunes `model` in place with CE + KD from the uncompressed model into <run>/<label>/
   * (checkpoints, metrics). `wrap` adds the stage's per-step work to the training task (its
   * `release` runs after every optimizer step: mask re-application, codebook updates, fake
   * quantization) and is handed the optimizer the fine-tuning steps with, for stages that reset its
   * state (RigL); `onEpoch` runs after each epoch with the 1-based epoch number. Needs
   * `needs.finetune`.
   */
  finetune(
    model: tfl.LayersModel,
    wrap?: (task: TrainTask, optimizer: LrOptimizer) => TrainTask,
    onEpoch?: (epoch: number) => void,
    opts?: FinetuneOptions,
  ): Promise<void>;
  /** int8 activation ranges of `model` over the first `batches` plain training batches. Needs `needs.calibration`. */
  calibrate(model: tfl.LayersModel, batches: number): Promise<QuantSpec>;
  /**
   * The inputs [N, H, W, C] of the first `n` plain (unaugmented) training batches; the caller
   * disposes them. Needs `needs.batches`. The runner always serves it; contexts that tests build by
   * hand may leave it out.
   */
  batches?(n: number): Promise<tf.Tensor4D[]>;
}

/** Where ctx.finetune writes. */
export interface FinetuneOptions {
  /**
   * The name of a control model (StageOutcome.controls) being trained: its checkpoints and metrics
   * go to <run>/<label>-<name>/, the folder of its report row's name, so that they neither
   * overwrite the stage's own in <run>/<label>/ nor are mistaken for them.
   */
  readonly control?: string;
}

/** What a stage leaves for later stages, the reports and the exports; absent fields: unchanged. */
export interface StageOutcome {
  /** A new model (structured pruning, factorization); absent when the stage changed ctx.model in place. */
  readonly model?: tfl.LayersModel;
  /** Masks that keep unstructured sparsity; later stages that train re-apply them (ctx.masks). */
  readonly masks?: MaskSet;
  /** Centroids per kernel after weight sharing: reports then count the clustered bytes. */
  readonly clusters?: number;
  /** int8 activation ranges for the static int8 ONNX export (QDQ). */
  readonly ranges?: QuantSpec;
  /**
   * Models trained only to compare with the stage's result (lottery's random re-initialisation
   * with the ticket's mask), never passed on: each is one more report row, `<label>-<name>`,
   * measured like the stage's own, after which the runner disposes it.
   */
  readonly controls?: readonly { readonly name: string; readonly model: tfl.LayersModel }[];
  /**
   * Weights the stage's compressed form stores, where that is fewer than the parameters of the
   * model it hands on (HashedNets: buckets and biases, while the exports hold the dense kernels they
   * expand to): the stage's report row shows it beside params.
   */
  readonly storedWeights?: number;
  /**
   * The model the .rtz bundle stores in place of `model`, computing the same function in a smaller
   * form (HashedNets: the hashed layers, whose buckets and seeds loadBundle expands back to
   * `model`'s kernels). It holds for the stage that made it only: any later stage may change the
   * weights, so the runner drops it when another stage runs.
   */
  readonly bundle?: tfl.LayersModel;
  /**
   * Bits per kernel weight the stage chose (mixed precision): by layer, with the kernels' packed
   * bytes at those bits and at 8 bits; the stage's report row carries it.
   */
  readonly weightBits?: WeightBits;
}

/** Kernel bit widths by layer and the kernels' bytes packed at them, and all at 8 bits. */
export interface WeightBits {
  readonly layers: Readonly<Record<string, number>>;
  readonly packedBytes: number;
  readonly int8Bytes: number;
}

/** A compression stage: the code that used to be one branch of the pipeline, with its declarations. */
export interface StageDescriptor<C> {
  /** Registry key, unique ('prune-magnitude'). */
  readonly name: string;
  /**
   * The pipeline config key whose section configures the stage (`prune`, `lowrank`, ...); the stage
   * runs when the section is present and matches `when`. Several stages may share a key.
   */
  readonly key: string;
  /** Section fields that must have these values for this stage to run (`{ kind: 'structured' }`). */
  readonly when?: Readonly<Record<string, string>>;
  /**
   * The section's own parameters with defaults; strict, so an unknown key fails. run/compress-config.ts
   * composes these schemas under `key`, so a pipeline file keeps one section per key.
   */
  readonly schema: z.ZodType<C>;
  /**
   * The name in reports and file names: its row in results.json and <run>/<label>.md when
   * `measured`, the fine-tuning folder <run>/<label>/; stages that are alternatives share one ('prune').
   */
  readonly label: string;
  /** Whether the model is measured after the stage (a report row). */
  readonly measured: boolean;
  readonly needs: StageNeeds;
  /**
   * Stages this one must not follow, with the reason shown to the user: the later stage would undo
   * the earlier one (lowrank refills pruned zeros). Checked before any stage runs.
   */
  readonly refusesAfter?: Readonly<Record<string, string>>;
  /**
   * The int8 settings this stage fixes for the exports. Declared up front, from the config alone:
   * the int8 target is announced before the stage runs, and the exports use it even when the stage
   * leaves no ranges. A pipeline with no such stage exports int8 files for the portable target
   * with per-channel weights, and bundles the float kernels.
   */
  int8?(config: C): Int8Settings;
  /** Runs the stage on ctx.model with its parsed section. */
  run(ctx: StageContext, config: C): Promise<StageOutcome>;
}

/**
 * Any stage, with its config type forgotten: what the registry holds. The runner parses the section
 * with the stage's own schema and passes the result back to it.
 */
export type AnyStageDescriptor = StageDescriptor<unknown>;
