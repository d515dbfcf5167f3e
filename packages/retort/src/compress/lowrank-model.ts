/**
 * Low-rank factorization of a whole model (the math is in lowrank.ts). Each Conv2D k x k, Cin ->
 * Cout becomes a k x k conv to r filters (same strides, padding, dilation; no bias, linear) followed
 * by a 1 x 1 conv to Cout carrying the bias and the activation: the "scheme 2" channel
 * decomposition of Jaderberg, Vedaldi & Zisserman, "Speeding up Convolutional Neural Networks with
 * Low Rank Expansions" (BMVC 2014) and Zhang, Zou, He & Sun, "Accelerating Very Deep Convolutional
 * Networks for Classification and Detection" (TPAMI 2016), here with the truncated SVD of the
 * [k k Cin, Cout] kernel matrix (Denton et al., "Exploiting Linear Structure Within Convolutional
 * Networks for Efficient Evaluation", NeurIPS 2014). Each Dense becomes Dense(r, no bias) then
 * Dense(out). Without fine-tuning afterwards the factorized model computes the same function up to
 * the dropped singular values; at full rank it is the same function.
 *
 * A layer is kept as it is (and reported with the reason) when it is named in `skip`, or when its
 * factorization would save less than `minSaving` of its parameters: at rank r the pair holds
 * r (k k Cin + Cout) weights against k k Cin Cout, so layers with few outputs (a stem conv on a
 * grey image, the classifier) rarely gain, and a pair that barely shrinks still costs a second
 * kernel launch and an extra activation tensor.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { cloneLayer, rebuildModel, transferWeights } from './graph.js';
import { chooseRank, factorize, type RankRule, type Svd, svd } from './lowrank.js';

type Layer = tfl.layers.Layer;

/** A rank rule, or a fixed rank. */
export type LayerRank = RankRule | { rank: number };

export interface FactorizeOptions {
  /** The rank of every factorized layer. */
  rank: LayerRank;
  /** Rank rules for single layers, by name (overrides `rank`). */
  perLayer?: Readonly<Record<string, LayerRank>>;
  /** Layers to leave as they are (e.g. edgeLayers(model): the stem conv and the classifier). */
  skip?: readonly string[];
  /**
   * Factorize a layer only when that saves at least this fraction of its parameters (default 0.1).
   * Values <= 0 also factorize layers that do not shrink: only useful to check exactness at full
   * rank (e.g. -Infinity).
   */
  minSaving?: number;
}

/** One factorized layer. */
export interface FactorizedLayer {
  /** The original layer; its factors are factorNames(layer). */
  layer: string;
  kind: 'Conv2D' | 'Dense';
  rank: number;
  /** min(k k Cin, Cout) for a conv, min(in, out) for a dense. */
  maxRank: number;
  /** Parameters of the layer (kernel and bias). */
  paramsBefore: number;
  /** Parameters of the two factors: r (rows + cols) + bias. */
  paramsAfter: number;
  /** ||W - A B||_F / ||W||_F = sqrt(sum of the dropped s_i^2) / ||W||_F (0 for a zero kernel). */
  relError: number;
}

export interface SkippedLayer {
  layer: string;
  reason: string;
}

export interface FactorizeResult {
  model: tfl.LayersModel;
  layers: FactorizedLayer[];
  skipped: SkippedLayer[];
}

const KINDS = new Set(['Conv2D', 'Dense']);
const DEFAULT_MIN_SAVING = 0.1;

/** Names of the two layers that replace `name`: the k x k (or to-r dense) one, then the 1 x 1. */
export function factorNames(name: string): [string, string] {
  return [`${name}_lr_a`, `${name}_lr_b`];
}

/** The Conv2D and Dense layers of `model` in its (topological) order. */
export function factorizableLayers(model: tfl.LayersModel): Layer[] {
  return model.layers.filter((l) => KINDS.has(l.getClassName()));
}

/** The first and the last factorizable layer: usually the stem conv and the classifier. */
export function edgeLayers(model: tfl.LayersModel): string[] {
  const ls = factorizableLayers(model);
  if (ls.length === 0) return [];
  return [...new Set([ls[0]!.name, ls[ls.length - 1]!.name])];
}

/** The kernel as a [rows, cols] matrix (a conv's [kh, kw, Cin, Cout] is [kh kw Cin, Cout]). */
function kernelMatrix(layer: Layer): { w: Float32Array; shape: number[]; rows: number; cols: number } {
  const k = layer.getWeights()[0]!;
  const shape = k.shape;
  const cols = shape[shape.length - 1]!;
  return { w: k.dataSync() as Float32Array, shape, rows: k.size / cols, cols };
}

function rankOf(layer: string, rule: LayerRank, d: Svd): number {
  const maxRank = Math.min(d.rows, d.cols);
  if ('rank' in rule) {
    if (!(Number.isInteger(rule.rank) && rule.rank >= 1 && rule.rank <= maxRank))
      throw new Error(
        `lowrank: layer '${layer}': rank must be an integer in [1, ${maxRank}], got ${rule.rank}`,
      );
    return rule.rank;
  }
  try {
    return chooseRank(d, rule);
  } catch (e) {
    throw new Error(`lowrank: layer '${layer}': ${(e as Error).message.replace(/^lowrank: /, '')}`);
  }
}

function checkNames(model: tfl.LayersModel, names: readonly string[], what: string): void {
  const known = factorizableLayers(model).map((l) => l.name);
  for (const name of names) {
    if (known.includes(name)) continue;
    const layer = model.layers.find((l) => l.name === name);
    throw new Error(
      layer
        ? `lowrank: ${what} names '${name}', a ${layer.getClassName()}, not a Conv2D or Dense`
        : `lowrank: ${what} names '${name}', which is no layer of model '${model.name}' (Conv2D/Dense layers: ${known.join(', ')})`,
    );
  }
}

/**
 * Replaces the Conv2D and Dense layers of `model` by low-rank pairs (see the file header); returns
 * the new model (the input model is unchanged), what was factorized and what was skipped and why.
 * Kernels are [kh, kw, Cin, Cout] (HWIO) and [in, out]; the factors are [kh, kw, Cin, r] and
 * [1, 1, r, Cout], or [in, r] and [r, out].
 */
export function factorizeModel(model: tfl.LayersModel, opts: FactorizeOptions): FactorizeResult {
  const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
  if (!(minSaving < 1)) throw new Error(`lowrank: minSaving must be < 1, got ${minSaving}`);
  const skip = new Set(opts.skip ?? []);
  const perLayer = opts.perLayer ?? {};
  checkNames(model, [...skip], 'skip');
  checkNames(model, Object.keys(perLayer), 'perLayer');
  const taken = new Set(model.layers.map((l) => l.name));

  const layers: FactorizedLayer[] = [];
  const skipped: SkippedLayer[] = [];
  const factors = new Map<string, { r: number; a: tf.Tensor; b: tf.Tensor; bias: tf.Tensor | undefined }>();
  for (const layer of factorizableLayers(model)) {
    const name = layer.name;
    if (skip.has(name)) {
      skipped.push({ layer: name, reason: 'named in skip' });
      continue;
    }
    const groups = layer.getConfig()['groups'];
    if (groups !== undefined && groups !== 1) {
      skipped.push({ layer: name, reason: `grouped conv (groups ${String(groups)})` });
      continue;
    }
    for (const n of factorNames(name))
      if (taken.has(n))
        throw new Error(`lowrank: cannot factorize '${name}': model '${model.name}' has a layer '${n}'`);
    const { w, shape, rows, cols } = kernelMatrix(layer);
    const d = svd(w, rows, cols);
    const r = rankOf(name, perLayer[name] ?? opts.rank, d);
    const bias = layer.getWeights()[1];
    const paramsBefore = layer.countParams();
    const paramsAfter = r * (rows + cols) + (bias?.size ?? 0);
    const saving = 1 - paramsAfter / paramsBefore;
    if (!(saving >= minSaving)) {
      skipped.push({
        layer: name,
        reason:
          `rank ${r} of ${Math.min(rows, cols)}: ${paramsAfter} parameters instead of ${paramsBefore} ` +
          `(saving ${(100 * saving).toFixed(1)}% < minSaving ${(100 * minSaving).toFixed(1)}%)`,
      });
      continue;
    }
    const f = factorize(w, d, r);
    const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    const kind = layer.getClassName() as 'Conv2D' | 'Dense';
    const conv = kind === 'Conv2D';
    factors.set(name, {
      r,
      a: tf.tensor(f.a, conv ? [shape[0]!, shape[1]!, shape[2]!, r] : [rows, r]),
      b: tf.tensor(f.b, conv ? [1, 1, r, cols] : [r, cols]),
      bias,
    });
    layers.push({
      layer: name,
      kind,
      rank: r,
      maxRank: Math.min(rows, cols),
      paramsBefore,
      paramsAfter,
      relError: norm > 0 ? f.error / norm : 0,
    });
  }

  const out = rebuildModel(model, (layer) => {
    const f = factors.get(layer.name);
    if (f === undefined) return undefined;
    const [a, b] = factorNames(layer.name);
    // The input shape options only matter to a model's first layer and would be wrong for the second.
    const noInput = { batchInputShape: undefined, inputShape: undefined, inputDim: undefined };
    const first =
      layer.getClassName() === 'Conv2D'
        ? { name: a, filters: f.r, useBias: false, activation: 'linear', activityRegularizer: null }
        : { name: a, units: f.r, useBias: false, activation: 'linear', activityRegularizer: null };
    const second =
      layer.getClassName() === 'Conv2D'
        ? { ...noInput, name: b, kernelSize: [1, 1], strides: [1, 1], padding: 'valid', dilationRate: [1, 1] }
        : { ...noInput, name: b };
    return { kind: 'replace', layers: [cloneLayer(layer, first), cloneLayer(layer, second)] };
  });
  const given = new Map<string, tf.Tensor[]>();
  for (const [name, f] of factors) {
    const [a, b] = factorNames(name);
    given.set(a, [f.a]);
    given.set(b, f.bias ? [f.b, f.bias] : [f.b]);
  }
  try {
    transferWeights(model, out, given);
  } finally {
    // Variables take over what they are assigned; the bias is the original layer's own variable
    // (getWeights returns the variables), so only the new factors are ours to free.
    for (const f of factors.values()) tf.dispose([f.a, f.b]);
  }
  return { model: out, layers, skipped };
}
