/**
 * Layers of the ONNX export that move, combine or pass values: ZeroPadding2D, Dropout, Add,
 * Multiply, Concatenate, Flatten (in NHWC order, as tfjs), Reshape, Permute and Retort's channel
 * slice. In the static int8 export the ones that only move values reuse their input's
 * quantization ('inherit'), so onnxruntime runs them on uint8.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { GraphFacts, OpEntry, OpTable } from './emit.js';
import type { Layout } from './graph.js';

/** A ZeroPadding2D whose only consumer is a 'valid' conv becomes that conv's pads. */
function padFoldsIntoConv(layer: tfl.layers.Layer, facts: GraphFacts): boolean {
  const consumers = facts.consumers(layer);
  const only = consumers.length === 1 && !facts.isOutput(layer) ? consumers[0]! : undefined;
  const oc = only?.getClassName();
  return (
    (oc === 'Conv2D' || oc === 'DepthwiseConv2D') && (only!.getConfig()['padding'] ?? 'valid') === 'valid'
  );
}

/** Add or Mul of all inputs, left to right: on NCHW when any input is, else in the tfjs layout. */
function merge(op: 'Add' | 'Mul'): OpEntry {
  return {
    emit: ({ g, ins, out, outShape, to }) => {
      // ONNX broadcasts like tfjs: a squeeze-excitation gate [N, 1, 1, C] times a map is one Mul.
      const layout: Layout = ins.some((v) => v.layout === 'nchw') ? 'nchw' : 'tf';
      const names = ins.map((v) => to(v, layout));
      let acc = names[0]!;
      for (let i = 1; i < names.length; i++)
        acc = g.node(op, [acc, names[i]!], i === names.length - 1 ? out : g.fresh(out));
      return { name: acc, layout, shape: outShape };
    },
    int8: 'own',
  };
}

export const SHAPE_OPS: OpTable = {
  ZeroPadding2D: {
    emit: ({ g, layer, cfg, x, out, outShape, facts, to }) => {
      const p = cfg['padding'] as [[number, number], [number, number]];
      if (padFoldsIntoConv(layer, facts))
        return { ...x, shape: outShape, pads: [p[0][0], p[1][0], p[0][1], p[1][1]] };
      const pads = g.i64(`${out}.pads`, [0, 0, p[0][0], p[1][0], 0, 0, p[0][1], p[1][1]]);
      return {
        name: g.node('Pad', [to(x, 'nchw'), pads], out, { mode: 'constant' }),
        layout: 'nchw',
        shape: outShape,
      };
    },
    // A folded pad passes its input through untouched, quantization included.
    int8: (layer, facts) => (padFoldsIntoConv(layer, facts) ? 'pass' : 'inherit'),
  },
  Dropout: {
    emit: ({ g, x, out, outShape }) => ({ ...x, name: g.node('Identity', [x.name], out), shape: outShape }),
    int8: 'inherit',
  },
  Add: merge('Add'),
  Multiply: merge('Mul'),
  Concatenate: {
    emit: ({ g, ins, cfg, x, out, outShape, to }) => {
      const rank = x.shape.length + 1;
      const axisCfg = (cfg['axis'] as number | undefined) ?? -1;
      const axis = axisCfg < 0 ? rank + axisCfg : axisCfg;
      // The channel axis of a map is axis 1 in NCHW; any other concat runs in the tfjs layout.
      const [layout, onnxAxis]: [Layout, number] = rank === 4 && axis === 3 ? ['nchw', 1] : ['tf', axis];
      const names = ins.map((v) => to(v, layout));
      return { name: g.node('Concat', names, out, { axis: onnxAxis }), layout, shape: outShape };
    },
    int8: 'own',
  },
  Flatten: {
    emit: ({ g, x, out, outShape, to }) => ({
      name: g.node('Flatten', [to(x, 'tf')], out, { axis: 1 }),
      layout: 'tf',
      shape: outShape,
    }),
    int8: 'inherit',
  },
  Reshape: {
    emit: ({ g, cfg, x, out, outShape, to }) => {
      const shape = g.i64(`${out}.shape`, [-1, ...(cfg['targetShape'] as number[])]);
      return { name: g.node('Reshape', [to(x, 'tf'), shape], out), layout: 'tf', shape: outShape };
    },
    int8: 'inherit',
  },
  Permute: {
    emit: ({ g, cfg, x, out, outShape, to }) => ({
      name: g.node('Transpose', [to(x, 'tf')], out, { perm: [0, ...(cfg['dims'] as number[])] }),
      layout: 'tf',
      shape: outShape,
    }),
    int8: 'inherit',
  },
  RetortChannelSlice: {
    emit: ({ g, cfg, x, out, outShape, to }) => {
      const start = cfg['start'] as number;
      const size = cfg['size'] as number;
      const nchw = x.shape.length === 3;
      const src = nchw ? to(x, 'nchw') : x.name;
      const axis = nchw ? 1 : x.shape.length;
      const inputs = [
        src,
        g.i64(`${out}.starts`, [start]),
        g.i64(`${out}.ends`, [start + size]),
        g.i64(`${out}.axes`, [axis]),
      ];
      return { name: g.node('Slice', inputs, out), layout: nchw ? 'nchw' : x.layout, shape: outShape };
    },
    int8: 'inherit',
  },
};
