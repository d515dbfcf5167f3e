/**
 * The contract between a distillation loss and the code that trains with it. A method declares what
 * it needs (teacher logits, features tapped by role, trainable parts, dataset indices); the trainer
 * serves those declarations and never asks which method it is running.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { z } from 'zod';

/** The paper a method comes from, cited in its file header and in reports. */
export interface PaperRef {
  readonly title: string;
  readonly authors: string;
  readonly venue: string;
  readonly year: number;
}

/**
 * Feature roles a method reads from each network ('hint', 'hidden', ...). The experiment file binds
 * each role to a layer name per network; the trainer taps those layers (taps/) without model edits.
 */
export interface TapNeeds<R extends string> {
  readonly student: readonly R[];
  readonly teacher: readonly R[];
}

/** What a method asks the trainer for; absent means "not needed". */
export interface LossNeeds<R extends string> {
  /** The teacher's logits (the student's are always at hand). */
  readonly logits?: true;
  /** Features by role. */
  readonly taps?: TapNeeds<R>;
  /** The batch's dataset indices, e.g. for a memory bank keyed by example (CRD). */
  readonly indices?: true;
}

/** Per-example shapes (no batch dimension; NHWC maps are [H, W, C]) of the tapped features. */
export interface TapShapes<R extends string> {
  readonly student: Readonly<Record<R, readonly number[]>>;
  readonly teacher: Readonly<Record<R, readonly number[]>>;
}

/**
 * Trainable modules a method adds (a regressor, an embedding head), by name. The trainer updates
 * and checkpoints them with the student (TrainTask.parts) and drops them after training.
 */
export type Parts = Readonly<Record<string, tfl.LayersModel>>;

/** No trainable parts. */
export type NoParts = Readonly<Record<never, tfl.LayersModel>>;

/** What a method may need to know about the training data when it builds its parts. */
export interface DataInfo {
  /** Number of training examples (dataset indices run 0 .. numExamples - 1), e.g. CRD's memory bank. */
  readonly numExamples: number;
  readonly numClasses: number;
  /**
   * Examples per training step; every step has exactly this many (the trainer drops the last
   * partial batch), so a part may be sized by it (SemCKD's embeddings of the batch's similarities).
   */
  readonly batchSize: number;
  /** Seed for parts that sample (negatives, initialisations). */
  readonly seed: number;
}

/** One network's outputs for a batch. */
export interface NetOutputs<R extends string> {
  /** [N, K] pre-softmax scores. */
  readonly logits: tf.Tensor2D;
  /** Tapped features by role; NHWC maps are [N, H, W, C]. */
  readonly features: Readonly<Record<R, tf.Tensor>>;
}

/** What `loss` sees for one batch; it runs inside the optimizer's gradient tape. */
export interface LossContext<C, R extends string, P extends Parts> {
  /** The method's config, already parsed (and defaulted) by its schema. */
  readonly config: C;
  readonly student: NetOutputs<R>;
  /** Computed without gradient (or from a cache); losses also detach it. */
  readonly teacher: NetOutputs<R>;
  /** int32 class indices [N]. */
  readonly labels: tf.Tensor1D;
  /** 0-based epoch, as the trainer counts (StepInput.epoch). */
  readonly epoch: number;
  /** Dataset indices [N] of the batch's examples. */
  readonly indices: Uint32Array;
  /** What `parts` built for this run. */
  readonly parts: P;
}

/**
 * A distillation method: a pure loss function wrapped with its config schema and declarations.
 * C: parsed config; R: feature roles it taps; P: trainable parts it adds.
 */
export interface LossDescriptor<C, R extends string = never, P extends Parts = NoParts> {
  /** The name experiment files use (`losses: [{ name: kd }]`); also the registry key. */
  readonly name: string;
  readonly paper: PaperRef;
  /**
   * The method's own parameters with defaults; strict, so an unknown key fails. The loss entry's
   * `name` and `weight` belong to the experiment schema and are removed before parsing.
   */
  readonly schema: z.ZodType<C>;
  readonly needs: LossNeeds<R>;
  /**
   * Builds the trainable parts once the tapped shapes are known (before the first step). Parts
   * persist across an experiment's stages for the same term label (a hint stage's regressor, FT's
   * paraphraser), and are checkpointed with the student.
   */
  parts?(shapes: TapShapes<R>, config: C, data: DataInfo): P;
  /** The loss of one batch, a scalar; not yet multiplied by the entry's weight. */
  loss(ctx: LossContext<C, R, P>): tf.Scalar;
}

/**
 * Any method, with its config, roles and parts types forgotten: what the registry holds. Code that
 * uses one parses the config with that method's own schema and passes the result back to it.
 */
export type AnyLossDescriptor = LossDescriptor<unknown, string, Parts>;

/**
 * The teacher side of a loss as a constant: the same values, zero gradient. Matches PyTorch's
 * `.detach()` / `torch.no_grad()` teacher, and keeps a peer network (online schemes) from being
 * pulled toward its student through this term.
 */
export function detach<T extends tf.Tensor>(x: T): T {
  return detachFn(x) as T;
}

// clone() shares the data (no copy); the zero gradient stops backprop at this point.
const detachFn = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(inputs[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));
