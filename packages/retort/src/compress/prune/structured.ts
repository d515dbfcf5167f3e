/**
 * Structured channel pruning that rebuilds a physically smaller model: removing output channels of a
 * Conv2D or Dense (filters, units) removes the matching batch-norm entries, depthwise channels, and
 * input channels or features of the layers that consume them (channels.ts finds these groups).
 * Residual and concatenation rule: a producer whose channels reach an Add or a Concatenate is not
 * pruned at all, so merges keep consistent shapes (as Li et al. do for ResNets: only the inside of
 * each residual block is pruned).
 * Criteria: the L1 norm of each filter (Li, Kadav, Durdanovic, Samet & Graf, "Pruning Filters for
 * Efficient ConvNets", ICLR 2017) or |gamma| of the batch norm after it (Liu, Li, Shen, Huang, Yan
 * & Zhang, "Learning Efficient Convolutional Networks through Network Slimming", ICCV 2017, who
 * train with an L1 penalty on gamma first (slimmingPenalty) and cut with one global threshold).
 * The model is rebuilt with graph.ts (same layer classes and names) and the kept weight slices.
 *
 * `roundTo` rounds every group's kept count to the nearest multiple (torch-pruning's round_to):
 * onnxruntime's and oneDNN's blocked convolution layouts work on channel blocks of 8 or 16, and
 * counts off those blocks run slower than the unpruned model (measured in bench:compress: ResNet-8
 * at 30% keeps 12/23/45 channels and takes 7.8 ms at batch 64 in onnxruntime against 5.5 ms
 * unpruned; at 50%, 8/16/32 channels, 3.7 ms).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { rebuildModel, transferWeights } from '../graph.js';
import { type ChannelGroup, channelGroups, mapIndices, traceGroup } from './channels.js';

export type { ChannelGroup } from './channels.js';
export { channelGroups, traceGroup } from './channels.js';

export type ChannelCriterion = 'l1' | 'bn-scale';

export interface ChannelPruneOptions {
  /** Fraction of each group's channels to remove ('layer'), or of all groups' channels ('global'). */
  fraction: number;
  criterion: ChannelCriterion;
  /** 'layer': every group loses the same fraction (Li et al.); 'global': one threshold (Liu et al.). */
  scope?: 'layer' | 'global';
  /** Prune only the groups of these producers (default: every prunable group). */
  only?: readonly string[];
  /** Round each group's kept count to the nearest multiple of this (at least one multiple, at most
   * all channels); default 1. */
  roundTo?: number;
}

/** `keep` rounded to the nearest multiple of `roundTo` within [roundTo, total] (total if smaller). */
export function roundKept(keep: number, total: number, roundTo = 1): number {
  checkRoundTo(roundTo);
  if (roundTo === 1) return keep;
  return Math.min(total, Math.max(roundTo, Math.round(keep / roundTo) * roundTo));
}

/** The `keep` best-scoring channels, ties by index; ascending. */
function topChannels(scores: Float32Array, keep: number): number[] {
  return Array.from(scores.keys())
    .sort((a, b) => scores[b]! - scores[a]! || a - b)
    .slice(0, keep)
    .sort((a, b) => a - b);
}

/** Channel scores of a group: the L1 norm of each output filter, or |gamma| of its batch norm. */
export function channelScores(
  model: tfl.LayersModel,
  group: ChannelGroup,
  criterion: ChannelCriterion,
): Float32Array {
  return tf.tidy(() => {
    if (criterion === 'bn-scale') {
      if (group.bn === null)
        throw new Error(
          `structured prune: criterion 'bn-scale' needs a batch norm right after '${group.producer}', which has none`,
        );
      const bn = model.getLayer(group.bn);
      const gamma = bn.weights.find((w) => w.originalName.endsWith('gamma'));
      if (gamma === undefined)
        throw new Error(`structured prune: batch norm '${group.bn}' has no gamma (scale: false)`);
      return tf.abs(gamma.read()).dataSync() as Float32Array;
    }
    const k = model.getLayer(group.producer).getWeights()[0]!; // [kh, kw, in, out] or [in, out]
    const axes = Array.from({ length: k.rank - 1 }, (_, i) => i);
    return tf.sum(tf.abs(k), axes).dataSync() as Float32Array;
  });
}

/** Kept channel indices: the (1 - fraction) best-scoring, at least one, ties by index; ascending. */
export function keptChannels(scores: Float32Array, fraction: number, roundTo = 1): number[] {
  checkFraction(fraction);
  const keep = Math.max(1, scores.length - Math.floor(fraction * scores.length));
  return topChannels(scores, roundKept(keep, scores.length, roundTo));
}

function checkRoundTo(roundTo: number): void {
  if (!(Number.isInteger(roundTo) && roundTo >= 1))
    throw new Error(`structured prune: roundTo must be a positive integer, got ${roundTo}`);
}

function checkFraction(fraction: number): void {
  if (!(fraction >= 0 && fraction < 1))
    throw new Error(`structured prune: fraction must be in [0, 1), got ${fraction}`);
}

/** One threshold over all groups' scores; every group keeps at least its best channel. */
function keptGlobal(scores: Float32Array[], fraction: number, roundTo = 1): number[][] {
  const all: { g: number; c: number; s: number }[] = [];
  for (const [g, s] of scores.entries()) for (const [c, v] of s.entries()) all.push({ g, c, s: v });
  all.sort((a, b) => a.s - b.s || a.g - b.g || a.c - b.c);
  const drop = new Set(all.slice(0, Math.floor(fraction * all.length)).map((e) => `${e.g}/${e.c}`));
  return scores.map((s, g) => {
    const kept = Array.from(s.keys()).filter((c) => !drop.has(`${g}/${c}`));
    const want = roundKept(Math.max(1, kept.length), s.length, roundTo);
    return want === kept.length ? kept : topChannels(s, want);
  });
}

/**
 * Sum of |gamma| over the batch norms of the prunable groups: network slimming's sparsity penalty
 * (add lambda * this to the training loss, lambda ~ 1e-5 .. 1e-4 in Liu et al.). Call inside the tape.
 */
export function slimmingPenalty(
  model: tfl.LayersModel,
  groups: ChannelGroup[] = channelGroups(model),
): tf.Scalar {
  return tf.tidy(() => {
    const terms = groups
      .filter((g) => g.bn !== null)
      .map((g) => {
        const gamma = model.getLayer(g.bn!).weights.find((w) => w.originalName.endsWith('gamma'));
        return gamma ? tf.sum(tf.abs(gamma.read())) : tf.scalar(0);
      });
    return (terms.length > 0 ? tf.addN(terms) : tf.scalar(0)) as tf.Scalar;
  });
}

/** Gathers `idx` along `axis` of w. */
function gather(w: tf.Tensor, idx: readonly number[], axis: number): tf.Tensor {
  return tf.gather(w, tf.tensor1d(idx as number[], 'int32'), axis);
}

/**
 * Removes channels of every prunable group (or of `only`'s) by the criterion; returns the rebuilt,
 * smaller model (the input model is left unchanged) and the kept channel indices by producer.
 */
export function pruneChannels(
  model: tfl.LayersModel,
  opts: ChannelPruneOptions,
): { model: tfl.LayersModel; kept: Record<string, number[]>; groups: ChannelGroup[] } {
  checkFraction(opts.fraction);
  checkRoundTo(opts.roundTo ?? 1);
  let groups = channelGroups(model);
  if (opts.only) {
    groups = opts.only.map((name) => {
      let layer: tfl.layers.Layer;
      try {
        layer = model.getLayer(name);
      } catch {
        throw new Error(`structured prune: model '${model.name}' has no layer '${name}'`);
      }
      const g = traceGroup(model, layer);
      if (typeof g === 'string') throw new Error(`structured prune: cannot prune '${name}': ${g}`);
      return g;
    });
  }
  if (groups.length === 0)
    throw new Error(
      `structured prune: model '${model.name}' has no Conv2D or Dense whose channels can be removed`,
    );
  const scores = groups.map((g) => channelScores(model, g, opts.criterion));
  const keptLists =
    (opts.scope ?? 'layer') === 'global'
      ? keptGlobal(scores, opts.fraction, opts.roundTo)
      : scores.map((s) => keptChannels(s, opts.fraction, opts.roundTo));
  const kept: Record<string, number[]> = {};
  groups.forEach((g, i) => {
    kept[g.producer] = keptLists[i]!;
  });
  // Weight edits by layer: a layer can be a consumer of one group and the producer of another.
  const edits = new Map<string, ((ws: tf.Tensor[]) => tf.Tensor[])[]>();
  const addEdit = (layer: string, f: (ws: tf.Tensor[]) => tf.Tensor[]) =>
    edits.set(layer, [...(edits.get(layer) ?? []), f]);
  for (const g of groups) {
    const k = kept[g.producer]!;
    addEdit(g.producer, (ws) => ws.map((w) => gather(w, k, w.rank - 1))); // kernel [.., out], bias [out]
    for (const t of g.touched) {
      const idx = mapIndices(k, t.maps);
      if (t.role === 'bn') addEdit(t.layer, (ws) => ws.map((w) => gather(w, idx, 0)));
      else if (t.role === 'depthwise') {
        const out = mapIndices(idx, [
          { kind: 'depthwise', multiplier: model.getLayer(t.layer).getConfig()['depthMultiplier'] as number },
        ]);
        addEdit(t.layer, (ws) => ws.map((w, i) => (i === 0 ? gather(w, idx, 2) : gather(w, out, 0))));
      } else if (t.role === 'consumer')
        addEdit(t.layer, (ws) => ws.map((w, i) => (i === 0 ? gather(w, idx, w.rank - 2) : w)));
    }
  }
  const widths = new Map(groups.map((g) => [g.producer, kept[g.producer]!.length]));
  const small = rebuildModel(model, (layer) => {
    const w = widths.get(layer.name);
    if (w === undefined) return undefined;
    return { kind: 'clone', config: layer.getClassName() === 'Conv2D' ? { filters: w } : { units: w } };
  });
  // Variables copy what they are assigned, so every slice can go with the tidy.
  tf.tidy(() => {
    const given = new Map<string, tf.Tensor[]>();
    for (const [name, fs] of edits) {
      let ws = model.getLayer(name).getWeights();
      for (const f of fs) ws = f(ws);
      given.set(name, ws);
    }
    transferWeights(model, small, given);
  });
  return { model: small, kept, groups };
}
