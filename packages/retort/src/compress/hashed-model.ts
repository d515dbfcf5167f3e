/**
 * HashedNets for a whole model (Chen, Wilson, Tyree, Weinberger & Chen, "Compressing Neural Networks
 * with the Hashing Trick", ICML 2015; the layers and the hash are hashed.ts). hashModel replaces each
 * chosen Dense (and, with `layers: 'all'`, Conv2D) by a hashed layer of the same name, bias and
 * activation holding K = ceil(n / factor) buckets for its n kernel weights. The paper trains
 * HashedNets from scratch; here the model is already trained, so each layer starts from the
 * least-squares projection of its trained kernel onto the hashed subspace (projectBuckets: bucket k
 * is the mean of s(p) W[p] over its positions), the closest hashed kernel to W, and the same model
 * whenever W already lies in that subspace (e.g. no two positions share a bucket). unhashModel turns
 * the hashed layers back into plain Dense / Conv2D layers holding their virtual kernels, so that
 * every exporter reads an ordinary model; only the bucket counts say what a hashed file would store.
 *
 * Layers kept whole (reported with the reason): fewer than `minWeights` kernel weights (the hash
 * tables cost more than they save), the edges with `skipEdges` (the classifier, and the stem conv
 * when convs are hashed: few weights, much of the accuracy), convs that are not channels-last.
 * DepthwiseConv2D kernels are never hashed: they are small. Regularizers and constraints of a
 * replaced layer are dropped.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { rebuildModel, transferWeights } from './graph.js';
import {
  type HashedArgs,
  HashedConv2D,
  HashedDense,
  HashedLayer,
  hashTables,
  projectBuckets,
  virtualKernel,
  xxh32,
} from './hashed.js';

type Layer = tfl.layers.Layer;

export interface HashModelOptions {
  /** Compression factor of each hashed kernel: K = ceil(n / factor) buckets; at least 1. */
  factor: number;
  /** Which kernels: Dense only (default) or Dense and Conv2D. */
  layers?: 'dense' | 'all';
  /** Keep the classifier (and, with 'all', the stem conv) whole. Default false. */
  skipEdges?: boolean;
  /** Hash only kernels with at least this many weights (default 1000). */
  minWeights?: number;
  /** Seed of the hashes (default 0); each layer's is XXH32(seed, its index in model.layers). */
  seed?: number;
}

/** One hashed layer. */
export interface HashedLayerInfo {
  layer: string;
  kind: 'Dense' | 'Conv2D';
  /** n: weights of the kernel it replaces. */
  weights: number;
  /** K: trainable buckets that store them. */
  buckets: number;
  /** Buckets no position hashes to (they stay 0 and get no gradient). */
  emptyBuckets: number;
  /** ||W - V||_F / ||W||_F of the projected start (0 for a zero kernel). */
  relError: number;
}

export interface HashModelResult {
  model: tfl.LayersModel;
  layers: HashedLayerInfo[];
  skipped: { layer: string; reason: string }[];
}

const pair = (v: unknown): [number, number] =>
  Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)];

/** Why `layer` stays whole, or null. */
function keepReason(layer: Layer, n: number, minWeights: number): string | null {
  if (n < minWeights) return `${n} kernel weights < minWeights ${minWeights}`;
  const cfg = layer.getConfig();
  if (cfg['dataFormat'] !== undefined && cfg['dataFormat'] !== 'channelsLast')
    return `dataFormat ${String(cfg['dataFormat'])} (only channelsLast is hashed)`;
  if (cfg['groups'] !== undefined && cfg['groups'] !== 1)
    return `grouped conv (groups ${String(cfg['groups'])})`;
  return null;
}

function hashedLayer(layer: Layer, buckets: number, seed: number): HashedLayer {
  const cfg = layer.getConfig();
  const base: HashedArgs = {
    name: layer.name,
    trainable: layer.trainable,
    buckets,
    seed,
    activation: String(cfg['activation'] ?? 'linear'),
    useBias: cfg['useBias'] !== false,
  };
  if (layer.getClassName() === 'Dense') return new HashedDense({ ...base, units: Number(cfg['units']) });
  return new HashedConv2D({
    ...base,
    filters: Number(cfg['filters']),
    kernelSize: pair(cfg['kernelSize']),
    strides: pair(cfg['strides'] ?? 1),
    padding: cfg['padding'] === 'same' ? 'same' : 'valid',
    dilationRate: pair(cfg['dilationRate'] ?? 1),
  });
}

/**
 * Replaces the chosen Dense / Conv2D layers of `model` by hashed ones (see the file header) with
 * projected buckets; returns the new model (`model` is unchanged), what was hashed and what was
 * kept whole and why. Throws when nothing is hashed, naming the candidates.
 */
export function hashModel(model: tfl.LayersModel, opts: HashModelOptions): HashModelResult {
  const { factor } = opts;
  if (!(factor >= 1 && Number.isFinite(factor))) throw new Error(`hash: factor must be >= 1, got ${factor}`);
  const minWeights = opts.minWeights ?? 1000;
  const kinds = new Set(opts.layers === 'all' ? ['Dense', 'Conv2D'] : ['Dense']);
  const candidates = model.layers.filter((l) => kinds.has(l.getClassName()));
  const edges = new Set<string>();
  if (opts.skipEdges && candidates.length > 0) {
    edges.add(candidates.at(-1)!.name);
    if (candidates[0]!.getClassName() === 'Conv2D') edges.add(candidates[0]!.name);
  }
  const layers: HashedLayerInfo[] = [];
  const skipped: HashModelResult['skipped'] = [];
  const replaced = new Map<string, { layer: HashedLayer; weights: tf.Tensor[] }>();
  for (const layer of candidates) {
    const [kernel, bias] = layer.getWeights();
    const n = kernel!.size;
    const reason = edges.has(layer.name) ? 'edge layer (skipEdges)' : keepReason(layer, n, minWeights);
    if (reason !== null) {
      skipped.push({ layer: layer.name, reason });
      continue;
    }
    const buckets = Math.ceil(n / factor);
    const seed = xxh32(opts.seed ?? 0, model.layers.indexOf(layer));
    const w = kernel!.dataSync() as Float32Array;
    const t = hashTables(n, buckets, seed);
    const p = projectBuckets(w, t, buckets);
    const v = virtualKernel(p.buckets, t);
    let err = 0;
    let norm = 0;
    for (let i = 0; i < n; i++) {
      err += (w[i]! - v[i]!) ** 2;
      norm += w[i]! ** 2;
    }
    replaced.set(layer.name, {
      layer: hashedLayer(layer, buckets, seed),
      weights: [tf.tensor1d(p.buckets), ...(bias ? [bias] : [])],
    });
    layers.push({
      layer: layer.name,
      kind: layer.getClassName() as 'Dense' | 'Conv2D',
      weights: n,
      buckets,
      emptyBuckets: p.empty,
      relError: norm > 0 ? Math.sqrt(err / norm) : 0,
    });
  }
  if (layers.length === 0)
    throw new Error(
      `hash: model '${model.name}' has no ${[...kinds].join(' or ')} layer to hash` +
        (skipped.length > 0
          ? ` (kept whole: ${skipped.map((s) => `${s.layer}: ${s.reason}`).join('; ')})`
          : ''),
    );
  const given = new Map([...replaced].map(([name, r]) => [name, r.weights]));
  // The bias is the source layer's own variable; only the new bucket tensors are ours to free.
  const out = withNewModel(
    () =>
      rebuildModel(model, (l) => {
        const r = replaced.get(l.name);
        return r === undefined ? undefined : { kind: 'replace', layers: [r.layer] };
      }),
    (m) => transferWeights(model, m, given),
    () => {
      for (const r of replaced.values()) r.weights[0]!.dispose();
    },
  );
  return { model: out, layers, skipped };
}

/**
 * The model `build` returns, after `fill` sets its weights; `release` frees the tensors made for
 * them, whatever happens. When either step throws, the new model (rebuildModel itself frees a
 * partial one) is disposed too, so a failure leaves no tensor behind.
 */
function withNewModel(
  build: () => tfl.LayersModel,
  fill: (m: tfl.LayersModel) => void,
  release: () => void,
): tfl.LayersModel {
  let out: tfl.LayersModel | undefined;
  try {
    out = build();
    fill(out);
    return out;
  } catch (e) {
    out?.dispose();
    throw e;
  } finally {
    release();
  }
}

/**
 * The same function as `model` with every hashed layer turned back into a plain Dense / Conv2D
 * holding its virtual kernel: what the exporters read. `model` is unchanged; on failure (a model
 * rebuildModel cannot replay) the tensors made for the new model are freed before the error.
 */
export function unhashModel(model: tfl.LayersModel): tfl.LayersModel {
  const given = new Map<string, tf.Tensor[]>();
  const unhash = () =>
    rebuildModel(model, (l) => {
      if (!(l instanceof HashedLayer)) return undefined;
      const bias = l.getWeights()[1];
      given.set(l.name, [l.virtual(), ...(bias ? [bias] : [])]);
      const base = { name: l.name, trainable: l.trainable, activation: l.activation, useBias: l.useBias };
      type DenseArgs = Parameters<typeof tfl.layers.dense>[0];
      type ConvArgs = Parameters<typeof tfl.layers.conv2d>[0];
      const plain =
        l instanceof HashedConv2D
          ? tfl.layers.conv2d({
              ...base,
              filters: l.filters,
              kernelSize: l.kernelSize,
              strides: l.strides,
              padding: l.padding,
              dilationRate: l.dilationRate,
            } as ConvArgs)
          : tfl.layers.dense({ ...base, units: (l as HashedDense).units } as DenseArgs);
      return { kind: 'replace', layers: [plain] };
    });
  // The virtual kernels are made here (the biases are the hashed layers' own variables).
  return withNewModel(
    unhash,
    (m) => transferWeights(model, m, given),
    () => {
      for (const ws of given.values()) ws[0]!.dispose();
    },
  );
}

/** The hashed layers of `model`, in layer order. */
export function hashedLayers(model: tfl.LayersModel): HashedLayer[] {
  return model.layers.filter((l): l is HashedLayer => l instanceof HashedLayer);
}
