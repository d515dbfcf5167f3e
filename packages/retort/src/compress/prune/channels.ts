/**
 * Which output channels of a model can be removed physically, found by walking the graph forward
 * from each Conv2D or Dense layer (the producer) to the layers that consume its channels:
 * - followers: layers that index the same channels and keep them apart (batch norm on the last
 *   axis; element-wise activations, dropout, padding, local and global pooling; a depthwise conv,
 *   whose input channels are dropped and whose output channels c * m .. c * m + m - 1 follow the
 *   input channel c; a flatten, whose feature (h * W + w) * C + c follows channel c);
 * - consumers: Conv2D (input channels) and Dense (input features), where the walk stops.
 * Anything else on the way (a residual Add, a Concatenate, a channel slice or shuffle, a softmax
 * across channels, a model output, a shared layer) makes the producer unprunable: channels that
 * meet other tensors in a merge are left alone, so every Add and Concatenate keeps its shapes.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { consumersOf, isModelOutput } from '../graph.js';

type Layer = tfl.layers.Layer;

/** How a layer's input channel indices become the indices of the layer after it. */
export type IndexMap =
  | { kind: 'depthwise'; multiplier: number }
  | { kind: 'flatten'; positions: number; channels: number };

/** A layer touched by pruning a producer, with the index maps between the producer and its input. */
export interface Touched {
  layer: string;
  role: 'bn' | 'depthwise' | 'pass' | 'flatten' | 'consumer';
  /** Maps from the producer's channels to this layer's input indices, in order. */
  maps: IndexMap[];
}

export interface ChannelGroup {
  /** The Conv2D or Dense whose output channels (filters, units) are removed. */
  producer: string;
  channels: number;
  /** The batch norm indexing the producer's channels directly (for the BN-scale criterion). */
  bn: string | null;
  touched: Touched[];
}

const PASS = new Set([
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'ThresholdedReLU',
  'Dropout',
  'SpatialDropout1D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'ZeroPadding2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'UpSampling2D',
]);

/** Applies index maps to channel indices. */
export function mapIndices(idx: readonly number[], maps: readonly IndexMap[]): number[] {
  let out = [...idx];
  for (const m of maps) {
    if (m.kind === 'depthwise')
      out = out.flatMap((c) => Array.from({ length: m.multiplier }, (_, j) => c * m.multiplier + j));
    else {
      const cur = out;
      out = Array.from({ length: m.positions }, (_, p) => cur.map((c) => p * m.channels + c)).flat();
    }
  }
  return out;
}

/** Shape of a single-input layer's input, batch axis included. */
function inShape(layer: Layer): (number | null)[] {
  return (layer.input as tfl.SymbolicTensor).shape;
}

/** The channel group of `producer`, or the reason it has none. */
export function traceGroup(model: tfl.LayersModel, producer: Layer): ChannelGroup | string {
  const cls = producer.getClassName();
  if (cls !== 'Conv2D' && cls !== 'Dense') return `'${producer.name}' is a ${cls}, not a Conv2D or Dense`;
  const cfg = producer.getConfig();
  if (cfg['activation'] === 'softmax') return `'${producer.name}' ends in a softmax across its channels`;
  if (cls === 'Conv2D' && cfg['dataFormat'] === 'channelsFirst')
    return `'${producer.name}' is channels-first`;
  const channels = (cls === 'Conv2D' ? cfg['filters'] : cfg['units']) as number;
  const touched: Touched[] = [];
  let bn: string | null = null;
  const walk = (from: Layer, maps: IndexMap[]): string | null => {
    if (isModelOutput(model, from)) return `'${from.name}' is a model output`;
    const next = consumersOf(from);
    if (next.length === 0) return `'${from.name}' has no consumer`;
    for (const c of next) {
      const ccls = c.getClassName();
      const where = `'${producer.name}' reaches '${c.name}' (${ccls})`;
      if (c.inboundNodes.length !== 1) return `${where}, a shared layer`;
      if (c.inboundNodes[0]!.inboundLayers.length !== 1)
        return `${where}, which merges it with other tensors`;
      const ccfg = c.getConfig();
      if (ccls === 'Conv2D' || ccls === 'Dense') {
        if (ccls === 'Conv2D' && ccfg['dataFormat'] === 'channelsFirst') return `${where}, channels-first`;
        touched.push({ layer: c.name, role: 'consumer', maps });
        continue;
      }
      let role: Touched['role'];
      let after = maps;
      if (ccls === 'BatchNormalization') {
        const axis = ccfg['axis'] as number;
        if (axis !== -1 && axis !== inShape(c).length - 1)
          return `${where} over axis ${axis}, not the channels`;
        role = 'bn';
        if (bn === null && maps.length === 0) bn = c.name;
      } else if (ccls === 'DepthwiseConv2D') {
        if (ccfg['dataFormat'] === 'channelsFirst') return `${where}, channels-first`;
        role = 'depthwise';
        after = [...maps, { kind: 'depthwise', multiplier: ccfg['depthMultiplier'] as number }];
      } else if (ccls === 'Flatten') {
        const s = inShape(c) as number[];
        const positions = s.slice(1, -1).reduce((a, b) => a * b, 1);
        role = 'flatten';
        after = [...maps, { kind: 'flatten', positions, channels: s[s.length - 1]! }];
      } else if (
        PASS.has(ccls) &&
        ccfg['activation'] !== 'softmax' &&
        ccfg['dataFormat'] !== 'channelsFirst'
      ) {
        role = 'pass';
      } else return `${where}, which does not keep channels apart`;
      touched.push({ layer: c.name, role, maps });
      const r = walk(c, after);
      if (r !== null) return r;
    }
    return null;
  };
  const reason = walk(producer, []);
  if (reason !== null) return reason;
  return { producer: producer.name, channels, bn, touched };
}

/** Every prunable channel group of a model, in layer order. */
export function channelGroups(model: tfl.LayersModel): ChannelGroup[] {
  const out: ChannelGroup[] = [];
  for (const l of model.layers) {
    const g = traceGroup(model, l);
    if (typeof g !== 'string') out.push(g);
  }
  return out;
}
