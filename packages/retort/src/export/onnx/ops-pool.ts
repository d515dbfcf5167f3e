/**
 * Pooling of the ONNX export: MaxPool and AveragePool on NCHW (tfjs 'same' padding as explicit
 * pads; average pooling excludes padding as tfjs does), and the global average pool.
 */
import type { EmitContext, OpEntry, OpTable } from './emit.js';
import { pair, samePad, type Value } from './graph.js';

function pool(op: 'MaxPool' | 'AveragePool', int8: OpEntry['int8']): OpEntry {
  const emit = ({ g, cfg, x, out, outShape, to }: EmitContext): Value => {
    const [kh, kw] = pair(cfg['poolSize'], 2);
    const [sh, sw] = pair(cfg['strides'] ?? cfg['poolSize'], 2);
    const [h, wd] = x.shape as [number, number, number];
    let pads = [0, 0, 0, 0];
    if (cfg['padding'] === 'same') {
      const [pt, pb] = samePad(h, kh, sh, 1);
      const [pl, pr] = samePad(wd, kw, sw, 1);
      pads = [pt, pl, pb, pr];
    }
    const attrs: Record<string, number | number[]> = { kernel_shape: [kh, kw], strides: [sh, sw], pads };
    if (op === 'AveragePool') attrs['count_include_pad'] = 0;
    return { name: g.node(op, [to(x, 'nchw')], out, attrs), layout: 'nchw', shape: outShape };
  };
  return { emit, int8 };
}

export const POOL_OPS: OpTable = {
  // A max of quantized values is one of them: same parameters, so it runs on uint8.
  MaxPooling2D: pool('MaxPool', 'inherit'),
  AveragePooling2D: pool('AveragePool', 'own'),
  GlobalAveragePooling2D: {
    emit: (ctx) => {
      const { g, x, out, outShape, to } = ctx;
      if (ctx.dynamic && x.layout === 'tf') {
        // NHWC after a dynamic int8 conv: a mean over H and W needs no transpose.
        const mean = g.node('ReduceMean', [x.name], out, { axes: [1, 2], keepdims: 0 });
        return { name: mean, layout: 'tf', shape: outShape };
      }
      let pooled: Value = {
        name: g.node('GlobalAveragePool', [to(x, 'nchw')], `${out}.pool`),
        layout: 'nchw',
        shape: [1, 1, outShape[0]!],
      };
      pooled = ctx.quantPoint(pooled, `${out}.pool`);
      return { name: g.node('Flatten', [pooled.name], out, { axis: 1 }), layout: 'tf', shape: outShape };
    },
    // Its pair sits on the pooled value, before the Flatten, whatever reads it: DQ ->
    // GlobalAveragePool -> Q becomes QLinearGlobalAveragePool.
    int8: 'inner',
  },
};
