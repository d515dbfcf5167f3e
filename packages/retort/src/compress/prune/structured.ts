/**
 * Structured channel pruning that rebuilds a physically smaller model. A conv's output channels
 * are removed together with their batch-norm entries and the matching input channels of the next
 * conv, for chains conv -> BN -> activation -> conv where each layer has one consumer (the inside
 * of a ResNet basic block, VGG's plain stack): channels that feed a residual Add or a Concatenate
 * are left alone, so every merge keeps consistent shapes (Li et al., "Pruning Filters for
 * Efficient ConvNets", ICLR 2017, prune ResNets the same way).
 * Criteria: the L1 norm of each filter (Li et al.) or |gamma| of the following BN (network
 * slimming, Liu et al., ICCV 2017). The model is rebuilt from its JSON config with the new widths
 * and the kept weight slices; everything else is copied.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export type ChannelCriterion = 'l1' | 'bn-scale';

export interface PrunableChain {
  conv: string;
  bn: string;
  next: string;
  channels: number;
}

function consumers(layer: tfl.layers.Layer): tfl.layers.Layer[] {
  return layer.outboundNodes.map((n) => n.outboundLayer);
}

/** The conv -> BN -> activation -> conv chains whose middle channels can be pruned. */
export function prunableChains(model: tfl.LayersModel): PrunableChain[] {
  const out: PrunableChain[] = [];
  for (const conv of model.layers) {
    if (conv.getClassName() !== 'Conv2D') continue;
    const c1 = consumers(conv);
    if (c1.length !== 1 || c1[0]!.getClassName() !== 'BatchNormalization') continue;
    const bn = c1[0]!;
    const c2 = consumers(bn);
    if (c2.length !== 1 || !['Activation', 'ReLU'].includes(c2[0]!.getClassName())) continue;
    const c3 = consumers(c2[0]!);
    if (c3.length !== 1) continue;
    let next = c3[0]!;
    // The zoo pads explicitly before strided convs: a ZeroPadding2D in between keeps channels.
    if (next.getClassName() === 'ZeroPadding2D') {
      const c4 = consumers(next);
      if (c4.length !== 1) continue;
      next = c4[0]!;
    }
    if (next.getClassName() !== 'Conv2D') continue;
    const filters = conv.getConfig()['filters'] as number;
    out.push({ conv: conv.name, bn: bn.name, next: next.name, channels: filters });
  }
  return out;
}

/** Channel scores of a chain: L1 norm of each output filter, or |gamma| of its BN. */
export function channelScores(
  model: tfl.LayersModel,
  chain: PrunableChain,
  criterion: ChannelCriterion,
): Float32Array {
  return tf.tidy(() => {
    if (criterion === 'bn-scale')
      return tf.abs(model.getLayer(chain.bn).getWeights()[0]!).dataSync() as Float32Array;
    const k = model.getLayer(chain.conv).getWeights()[0]!; // [kh, kw, in, out]
    return tf.sum(tf.abs(k), [0, 1, 2]).dataSync() as Float32Array;
  });
}

/** Kept channel indices: the (1 - fraction) best-scoring, at least one, in ascending order. */
export function keptChannels(scores: Float32Array, fraction: number): number[] {
  if (!(fraction >= 0 && fraction < 1))
    throw new Error(`structured prune: fraction must be in [0, 1), got ${fraction}`);
  const keep = Math.max(1, scores.length - Math.floor(fraction * scores.length));
  return Array.from(scores.keys())
    .sort((a, b) => scores[b]! - scores[a]! || a - b)
    .slice(0, keep)
    .sort((a, b) => a - b);
}

/** Removes `fraction` of the channels of every prunable chain; returns the rebuilt model. */
export async function pruneChannels(
  model: tfl.LayersModel,
  fraction: number,
  criterion: ChannelCriterion,
  /** Prune only the chains starting at these convs (default: every prunable chain). */
  only?: readonly string[],
): Promise<{ model: tfl.LayersModel; kept: Record<string, number[]> }> {
  const all = prunableChains(model);
  for (const name of only ?? [])
    if (!all.some((c) => c.conv === name))
      throw new Error(
        `structured prune: '${name}' does not start a prunable chain (prunable: ${all.map((c) => c.conv).join(', ')})`,
      );
  const chains = only ? all.filter((c) => only.includes(c.conv)) : all;
  if (chains.length === 0)
    throw new Error(`structured prune: model '${model.name}' has no conv -> BN -> activation -> conv chain`);
  const kept: Record<string, number[]> = {};
  for (const c of chains) kept[c.conv] = keptChannels(channelScores(model, c, criterion), fraction);
  // New widths in the config.
  const json = JSON.parse(JSON.stringify(model.toJSON(null, false))) as {
    config: { layers: { name: string; config: Record<string, unknown> }[] };
  };
  for (const l of json.config.layers) {
    const k = kept[l.name];
    if (k) l.config['filters'] = k.length;
  }
  const small = (await tfl.models.modelFromJSON({ modelTopology: json } as never)) as tfl.LayersModel;
  // Weights: slices for the pruned chains, copies elsewhere.
  const byConv = new Map(chains.map((c) => [c.conv, c]));
  const byBn = new Map(chains.map((c) => [c.bn, c]));
  const byNext = new Map(chains.map((c) => [c.next, c]));
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (ws.length === 0) continue;
    let next = ws;
    const asConv = byConv.get(layer.name);
    const asBn = byBn.get(layer.name);
    const asNext = byNext.get(layer.name);
    if (asConv) {
      const idx = tf.tensor1d(kept[asConv.conv]!, 'int32');
      next = next.map((w) => tf.gather(w, idx, w.rank - 1)); // kernel [.., out], bias [out]
    }
    if (asBn) {
      const idx = tf.tensor1d(kept[asBn.conv]!, 'int32');
      next = next.map((w) => tf.gather(w, idx, 0));
    }
    if (asNext) {
      const idx = tf.tensor1d(kept[asNext.conv]!, 'int32');
      next = next.map((w, i) => (i === 0 ? tf.gather(w, idx, 2) : w)); // kernel [kh, kw, in, out]
    }
    small.getLayer(layer.name).setWeights(next);
  }
  return { model: small, kept };
}
