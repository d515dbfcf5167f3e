/**
 * The contract between a student search space and the search that walks it. A space declares the
 * ranges a user may narrow in config (its schema, with defaults), how one point of it is written
 * down (a candidate: a plain JSON object, so a population can be saved, resumed and reported), how
 * to draw and perturb points, and how to build one as a model; the search never asks which space it
 * is walking. Draws and mutations are the operators of regularized evolution ("Regularized
 * Evolution for Image Classifier Architecture Search", Real, Aggarwal, Huang & Le, AAAI 2019):
 * a mutation changes one gene, so a child stays near its parent.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { z } from 'zod';
import type { ModelTaps } from '../../models/common.js';
import type { Rng } from '../../util/rng.js';

/** What a candidate is built for. */
export interface BuildContext {
  /** Input image [H, W, C] (NHWC without the batch axis). */
  readonly inputShape: readonly [number, number, number];
  /** Number of classes (logits). */
  readonly numClasses: number;
  /** Base seed of the initialisers; unseeded when absent. */
  readonly seed?: number;
  /** Model name; defaults to the candidate's key. */
  readonly name?: string;
}

/**
 * A search space. `S` is its ranges after parsing (defaults filled in), `C` one candidate. Every
 * function is pure apart from drawing from the Rng, so a seed fixes a whole search.
 */
export interface SpaceDescriptor<S, C> {
  /** Registry key and config name (`space: { name: resnet }`); also the prefix of every key. */
  readonly name: string;
  /** One line for listings: family, what varies, paper. */
  readonly description: string;
  /** The ranges as a user writes them in config; strict (an unknown key fails), with defaults. */
  readonly schema: z.ZodType<S>;
  /** The shape of a candidate, whatever the ranges (outside() checks a candidate against them). */
  readonly candidate: z.ZodType<C>;
  /** Number of distinct candidates in `space` (a float: spaces grow past 2^53 quickly). */
  size(space: S): number;
  /** Why `c` is not a point of `space` (naming the gene), or undefined when it is. */
  outside(space: S, c: C): string | undefined;
  /** A point of `space`, each gene uniform over its choices. */
  sample(space: S, rng: Rng): C;
  /**
   * `c` (a point of `space`) with one gene changed to another of its choices: a different point of
   * `space` whenever the space has more than one. `c` itself is not modified.
   */
  mutate(space: S, c: C, rng: Rng): C;
  /** A short string, the same for equal candidates and different for different ones ('resnet-b1.2.1-w0.75'). */
  key(c: C): string;
  /** A fresh model for `c`: [N, H, W, C] images -> [N, numClasses] logits, exportable to ONNX. */
  build(c: C, ctx: BuildContext): tfl.LayersModel;
  /** Where the built model's features are, by layer name, for feature distillation. */
  taps?(c: C): ModelTaps;
}

/**
 * Any space, with its range and candidate types forgotten: what the registry holds. Callers parse
 * ranges with `schema` and candidates with `candidate` and pass the results back to the same space
 * (space-config.ts does this for them).
 */
export type AnySpaceDescriptor = SpaceDescriptor<unknown, unknown>;
