/**
 * Tucker-2 decomposition of a whole model (the math is in tucker.ts): Kim, Park, Yoo, Choi, Yang &
 * Shin, "Compression of Deep Convolutional Neural Networks for Fast and Low Power Mobile
 * Applications" (ICLR 2016). Each k x k Conv2D, Cin -> Cout, becomes a 1 x 1 conv Cin -> R1 (no bias,
 * linear), the k x k core R1 -> R2 (the original strides, padding and dilation; no bias, linear) and a
 * 1 x 1 conv R2 -> Cout carrying the original bias and activation. The first factor has no bias, so
 * it maps the zero padding to zeros and the core sees the padding the original conv saw. Dense layers
 * are kept, or factorized by the truncated SVD of lowrank-model.ts (`dense: 'svd'`).
 *
 * Kept whole, and reported with the reason:
 * - 1 x 1 convs: with no spatial mode the three factors are a product of three matrices, which the
 *   two factors of a truncated SVD (lowrank) express with fewer weights and one layer less.
 * - Depthwise convs: each channel has its own k x k filter and no other channel mixes in, so there
 *   is no Cin x Cout structure to compress; they are also a small share of a model's MACs.
 * - Grouped convs, layers named in `skip` (e.g. edgeLayers(model): the stem conv, whose Cin is 1 or
 *   3, and the classifier), and layers whose factors would save less than `minSaving` of their
 *   weights: at ranks R1, R2 a conv holds Cin R1 + k k R1 R2 + R2 Cout weights against k k Cin Cout,
 *   and three layers where one did cost two more kernel launches and activation tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { layerCost } from '../measure/model-stats.js';
import { cloneLayer, rebuildModel, transferWeights } from './graph.js';
import { svd } from './lowrank.js';
import { factorizableLayers, factorizeModel, type LayerRank, type SkippedLayer } from './lowrank-model.js';
import {
  channelSvds,
  chooseRanks,
  type KernelShape,
  type TuckerRankRule,
  tuckerKernels,
  tuckerWeights,
  vbmfRank,
} from './tucker.js';

type Layer = tfl.layers.Layer;

export type { SkippedLayer } from './lowrank-model.js';

export interface TuckerOptions {
  /** How to choose the ranks of every factorized layer. */
  rank: TuckerRankRule;
  /** Dense layers: factorized by truncated SVD at the same rule ('svd'), or kept (default 'keep'). */
  dense?: 'svd' | 'keep';
  /** Layers to keep whole (e.g. edgeLayers(model): the stem conv and the classifier). */
  skip?: readonly string[];
  /**
   * Factorize a layer only when that saves at least this fraction of its weights (default 0.1).
   * Values <= 0 also factorize layers that do not shrink: only useful to check exactness at full
   * ranks (e.g. -Infinity).
   */
  minSaving?: number;
}

/** One factorized layer. */
export interface TuckerLayer {
  layer: string;
  kind: 'Conv2D' | 'Dense';
  /** [R1, R2] of a conv (input, output channel mode); [r] of a dense SVD. */
  ranks: number[];
  /** The full ranks: [Cin, Cout] of a conv, [min(in, out)] of a dense. */
  maxRanks: number[];
  /** Weights (kernel and bias) of the layer, and of its factors. */
  paramsBefore: number;
  paramsAfter: number;
  /** Multiply-accumulates per example (measure/model-stats.ts conventions), of the layer and its factors. */
  macsBefore: number;
  macsAfter: number;
  /** ||W - W~||_F / ||W||_F of the kernel. */
  relError: number;
}

export interface TuckerResult {
  model: tfl.LayersModel;
  /** In the model's layer order. */
  layers: TuckerLayer[];
  skipped: SkippedLayer[];
  /** MACs per example of all Conv2D and DepthwiseConv2D layers, before and after. */
  convMacs: { before: number; after: number };
}

const CANDIDATES = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);
const CONVS = new Set(['Conv2D', 'DepthwiseConv2D']);
const DEFAULT_MIN_SAVING = 0.1;

/** Names of the three layers that replace conv `name`: the 1 x 1 to R1, the core, the 1 x 1 to Cout. */
export function tuckerNames(name: string): [string, string, string] {
  return [`${name}_tk_in`, `${name}_tk_core`, `${name}_tk_out`];
}

function spatial(shape: readonly (number | null)[]): number {
  return (shape[1] ?? 0) * (shape[2] ?? 0);
}

function checkOptions(model: tfl.LayersModel, opts: TuckerOptions): void {
  const r = opts.rank as unknown;
  const ok =
    r === 'vbmf' ||
    (typeof r === 'object' &&
      r !== null &&
      Object.keys(r).length === 1 &&
      ('energy' in r || 'sizeFraction' in r));
  if (!ok)
    throw new Error(
      `tucker: rank must be { energy: e }, { sizeFraction: f } or 'vbmf', got ${JSON.stringify(r)}`,
    );
  if (typeof r === 'object') {
    const [[key, v]] = Object.entries(r as Record<string, unknown>) as [[string, unknown]];
    if (!(typeof v === 'number' && v > 0 && v <= 1))
      throw new Error(`tucker: rank.${key} must be in (0, 1], got ${String(v)}`);
  }
  if (opts.dense !== undefined && opts.dense !== 'svd' && opts.dense !== 'keep')
    throw new Error(`tucker: dense must be 'svd' or 'keep', got ${JSON.stringify(opts.dense)}`);
  const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
  if (!(minSaving < 1)) throw new Error(`tucker: minSaving must be < 1, got ${minSaving}`);
  const known = model.layers.filter((l) => CANDIDATES.has(l.getClassName())).map((l) => l.name);
  for (const name of opts.skip ?? []) {
    if (known.includes(name)) continue;
    const layer = model.layers.find((l) => l.name === name);
    throw new Error(
      layer
        ? `tucker: skip names '${name}', a ${layer.getClassName()}, not a Conv2D, DepthwiseConv2D or Dense`
        : `tucker: skip names '${name}', which is no layer of model '${model.name}' (its convs and dense layers: ${known.join(', ')})`,
    );
  }
}

/** Why `layer` stays whole before its ranks are known, or undefined when it is a Tucker candidate. */
function keepReason(layer: Layer, skip: ReadonlySet<string>, dense: 'svd' | 'keep'): string | undefined {
  if (skip.has(layer.name)) return 'named in skip';
  const cls = layer.getClassName();
  if (cls === 'DepthwiseConv2D') return 'depthwise conv: no channel mixing to compress';
  if (cls === 'Dense') return dense === 'keep' ? "dense layer (dense: 'keep')" : undefined;
  const groups = layer.getConfig()['groups'];
  if (groups !== undefined && groups !== 1) return `grouped conv (groups ${String(groups)})`;
  const [kh, kw] = layer.getWeights()[0]!.shape;
  if (kh === 1 && kw === 1) return '1x1 conv: no spatial mode; a truncated SVD (lowrank) is smaller';
  return undefined;
}

interface ConvPlan {
  r1: number;
  r2: number;
  kernels: tf.Tensor[];
  bias: tf.Tensor | undefined;
}

/**
 * Replaces the k x k Conv2D layers of `model` by Tucker-2 triples, and with `dense: 'svd'` its Dense
 * layers by truncated-SVD pairs (see the file header); returns the new model (the input model is
 * unchanged), what was factorized and what was kept whole and why. Kernels are [kh, kw, Cin, Cout]
 * (HWIO); the factors are [1, 1, Cin, R1], [kh, kw, R1, R2] and [1, 1, R2, Cout].
 */
export function tuckerModel(model: tfl.LayersModel, opts: TuckerOptions): TuckerResult {
  checkOptions(model, opts);
  const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
  const dense = opts.dense ?? 'keep';
  const skip = new Set(opts.skip ?? []);
  const taken = new Set(model.layers.map((l) => l.name));
  const rows = new Map<string, TuckerLayer>();
  const skipped = new Map<string, SkippedLayer>();
  const convs = new Map<string, ConvPlan>();
  const denseRanks: Record<string, LayerRank> = {};

  for (const layer of model.layers.filter((l) => CANDIDATES.has(l.getClassName()))) {
    const name = layer.name;
    const why = keepReason(layer, skip, dense);
    if (why !== undefined) {
      skipped.set(name, { layer: name, reason: why });
      continue;
    }
    const k = layer.getWeights()[0]!;
    if (layer.getClassName() === 'Dense') {
      // lowrank-model.ts does the SVD pair; the VBMF rank is ours to find.
      if (opts.rank !== 'vbmf') denseRanks[name] = opts.rank;
      else {
        const [fin, fout] = k.shape as [number, number];
        const d = svd(k.dataSync(), fin, fout);
        denseRanks[name] = { rank: Math.max(1, vbmfRank(d.s, fin, fout).rank) };
      }
      continue;
    }
    for (const n of tuckerNames(name))
      if (taken.has(n))
        throw new Error(`tucker: cannot factorize '${name}': model '${model.name}' has a layer '${n}'`);
    const shape = k.shape as unknown as KernelShape;
    const [kh, kw, cin, cout] = shape;
    const w = k.dataSync();
    const d = channelSvds(w, shape);
    const [r1, r2] = chooseRanks(d, shape, opts.rank);
    const bias = layer.getWeights()[1];
    const paramsBefore = layer.countParams();
    const paramsAfter = tuckerWeights(shape, r1, r2) + (bias?.size ?? 0);
    const saving = 1 - paramsAfter / paramsBefore;
    if (!(saving >= minSaving)) {
      skipped.set(name, {
        layer: name,
        reason:
          `ranks ${r1}, ${r2} of ${cin}, ${cout}: ${paramsAfter} parameters instead of ${paramsBefore} ` +
          `(saving ${(100 * saving).toFixed(1)}% < minSaving ${(100 * minSaving).toFixed(1)}%)`,
      });
      continue;
    }
    const t = tuckerKernels(w, shape, d, r1, r2);
    convs.set(name, {
      r1,
      r2,
      kernels: [
        tf.tensor(t.first, [1, 1, cin, r1]),
        tf.tensor(t.core, [kh, kw, r1, r2]),
        tf.tensor(t.last, [1, 1, r2, cout]),
      ],
      bias,
    });
    // The first factor runs at the input's resolution, the core and the last at the output's.
    const hwIn = spatial((layer.input as tfl.SymbolicTensor).shape);
    const hwOut = spatial(layer.outputShape as (number | null)[]);
    rows.set(name, {
      layer: name,
      kind: 'Conv2D',
      ranks: [r1, r2],
      maxRanks: [cin, cout],
      paramsBefore,
      paramsAfter,
      macsBefore: layerCost(layer).macs,
      macsAfter: hwIn * cin * r1 + hwOut * (kh * kw * r1 * r2 + r2 * cout),
      relError: t.relError,
    });
  }

  let out = rebuildConvs(model, convs);
  const toFactor = Object.keys(denseRanks);
  if (toFactor.length > 0) {
    const others = factorizableLayers(out)
      .map((l) => l.name)
      .filter((n) => !toFactor.includes(n));
    const f = factorizeModel(out, { rank: { energy: 1 }, perLayer: denseRanks, skip: others, minSaving });
    out.dispose();
    out = f.model;
    for (const l of f.layers) {
      const [fin, fout] = model.getLayer(l.layer).getWeights()[0]!.shape as [number, number];
      rows.set(l.layer, {
        layer: l.layer,
        kind: 'Dense',
        ranks: [l.rank],
        maxRanks: [l.maxRank],
        paramsBefore: l.paramsBefore,
        paramsAfter: l.paramsAfter,
        macsBefore: fin * fout,
        macsAfter: l.rank * (fin + fout),
        relError: l.relError,
      });
    }
    for (const s of f.skipped) if (toFactor.includes(s.layer)) skipped.set(s.layer, s);
  }
  const convMacs = (m: tfl.LayersModel) =>
    m.layers.filter((l) => CONVS.has(l.getClassName())).reduce((a, l) => a + layerCost(l).macs, 0);
  const order = model.layers.map((l) => l.name);
  const inOrder = <T extends { layer: string }>(m: Map<string, T>) =>
    order.flatMap((n) => (m.has(n) ? [m.get(n)!] : []));
  return {
    model: out,
    layers: inOrder(rows),
    skipped: inOrder(skipped),
    convMacs: { before: convMacs(model), after: convMacs(out) },
  };
}

/** `model` with each conv of `convs` replaced by its three factor layers, weights set. */
function rebuildConvs(model: tfl.LayersModel, convs: ReadonlyMap<string, ConvPlan>): tfl.LayersModel {
  const out = rebuildModel(model, (layer) => {
    const p = convs.get(layer.name);
    if (p === undefined) return undefined;
    const [a, b, c] = tuckerNames(layer.name);
    // The input shape options only matter to a model's first layer and would be wrong after it.
    const noInput = { batchInputShape: undefined, inputShape: undefined, inputDim: undefined };
    const pointwise = { kernelSize: [1, 1], strides: [1, 1], padding: 'valid', dilationRate: [1, 1] };
    const linear = { useBias: false, activation: 'linear', activityRegularizer: null };
    return {
      kind: 'replace',
      layers: [
        cloneLayer(layer, { name: a, filters: p.r1, ...pointwise, ...linear }),
        cloneLayer(layer, { ...noInput, name: b, filters: p.r2, ...linear }),
        cloneLayer(layer, { ...noInput, name: c, ...pointwise }),
      ],
    };
  });
  const given = new Map<string, tf.Tensor[]>();
  for (const [name, p] of convs) {
    const [a, b, c] = tuckerNames(name);
    const [first, core, last] = p.kernels as [tf.Tensor, tf.Tensor, tf.Tensor];
    given.set(a, [first]);
    given.set(b, [core]);
    given.set(c, p.bias ? [last, p.bias] : [last]);
  }
  try {
    transferWeights(model, out, given);
  } finally {
    // The bias is the original layer's own variable (getWeights returns the variables): only the
    // new kernels are ours to free.
    for (const p of convs.values()) tf.dispose(p.kernels);
  }
  return out;
}
