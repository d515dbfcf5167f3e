/**
 * Batch normalization of the ONNX export: BatchNormalization on NCHW maps or [N, C] features. In
 * the int8 exports (static or dynamic) a batch norm that directly follows a conv is folded into
 * that conv (ops-conv.ts) and writes nothing itself.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { OpTable } from './emit.js';
import { weightsOf } from './graph.js';

/**
 * The conv a batch norm folds into for the int8 exports: a Conv2D or DepthwiseConv2D without a
 * fused activation whose only consumer is this batch norm; null for any other layer.
 */
export function bnFoldTarget(layer: tfl.layers.Layer): tfl.layers.Layer | null {
  if (layer.getClassName() !== 'BatchNormalization') return null;
  const src = layer.inboundNodes[0]!.inboundLayers[0]!;
  const cls = src.getClassName();
  return (cls === 'Conv2D' || cls === 'DepthwiseConv2D') &&
    src.outboundNodes.length === 1 &&
    (src.getConfig()['activation'] ?? 'linear') === 'linear'
    ? src
    : null;
}

export const NORM_OPS: OpTable = {
  BatchNormalization: {
    emit: ({ g, layer, cfg, x, out, outShape, facts, to }) => {
      // Folded: the conv's output is this layer's (the int8 pass quantizes it with this range).
      if (facts.foldedBns.has(layer.name)) return { ...x, shape: outShape };
      if (x.shape.length !== 3 && x.shape.length !== 1)
        throw new Error(`onnx export: layer '${layer.name}': batch norm over rank ${x.shape.length + 1}`);
      const w = weightsOf(layer);
      const c = x.shape.at(-1)!;
      const ones = new Float32Array(c).fill(1);
      const inputs = [
        x.shape.length === 3 ? to(x, 'nchw') : x.name,
        g.f32(`${out}.scale`, w['gamma']?.data ?? ones, [c]),
        g.f32(`${out}.bias`, w['beta']?.data ?? new Float32Array(c), [c]),
        g.f32(`${out}.mean`, w['moving_mean']!.data, [c]),
        g.f32(`${out}.var`, w['moving_variance']!.data, [c]),
      ];
      return {
        name: g.node('BatchNormalization', inputs, out, { epsilon: cfg['epsilon'] as number }),
        layout: x.shape.length === 3 ? 'nchw' : 'tf',
        shape: outShape,
      };
    },
    int8: 'own',
  },
};
