/**
 * The ONNX export's walk over a functional (or sequential) tfjs-layers model: layers in model
 * order, each written by its op entry (ops.ts) from the values of the layers it reads.
 *
 * The ONNX model takes the same NHWC input as Retort (named `input`) and gives the same outputs
 * (`output`, or `output0`, `output1`, ... for several). Inside, each value carries a layout: 'nchw'
 * for 4-D maps after a conv-like op, 'tf' for tensors in tfjs's own layout (the input, reshapes,
 * permutes, rank-2 features); ops that need one layout get a Transpose only when the producer used
 * the other (onnxruntime folds adjacent transposes).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { DynamicPass, EmitContext, GraphFacts, Int8Hooks } from './emit.js';
import {
  type ActQuant,
  floatWeights,
  type GraphBuilder,
  type GraphIo,
  toLayout,
  type Value,
} from './graph.js';
import { opFor } from './ops.js';
import { bnFoldTarget } from './ops-norm.js';

type Layer = tfl.layers.Layer;

/** Graph facts of `model`; `foldBn` (the int8 exports) folds batch norms into the conv before them. */
export function graphFacts(model: tfl.LayersModel, foldBn: boolean): GraphFacts {
  const inModel = new Set(model.layers.map((l) => l.name));
  const outputLayers = new Set(model.outputs.map((o) => o.sourceLayer.name));
  const bnOf = new Map<string, Layer>();
  const foldedBns = new Set<string>();
  if (foldBn) {
    for (const layer of model.layers) {
      const src = bnFoldTarget(layer);
      if (src) {
        bnOf.set(src.name, layer);
        foldedBns.add(layer.name);
      }
    }
  }
  return {
    consumers: (layer) => layer.outboundNodes.map((n) => n.outboundLayer).filter((l) => inModel.has(l.name)),
    isOutput: (layer) => outputLayers.has(layer.name),
    bnOf,
    foldedBns,
  };
}

/** The passes an export runs besides fp32: static int8 (int8.ts) or dynamic int8 (dynamic.ts). */
export interface Passes {
  int8: Int8Hooks | undefined;
  dynamic: DynamicPass | undefined;
}

/** The graph's inputs and outputs as the walk named them. */
export interface Walked {
  inputs: GraphIo[];
  outputs: GraphIo[];
}

/** Writes `model`'s graph into `g`: every layer's nodes, then an Identity per model output. */
export function walkLayers(
  model: tfl.LayersModel,
  g: GraphBuilder,
  facts: GraphFacts,
  passes: Passes,
): Walked {
  const { int8 } = passes;
  if (model.inputs.length !== 1) throw new Error('onnx export: models with one input only');
  const input: GraphIo = { name: 'input', shape: model.inputs[0]!.shape.slice(1) as number[] };
  const inputLayer = model.inputLayers[0]!;
  const values = new Map<string, Value>();
  const inputValue: Value = { name: input.name, layout: 'tf', shape: input.shape };
  values.set(inputLayer.name, int8 ? int8.input(inputValue, inputLayer) : inputValue);
  const to = (v: Value, layout: Value['layout']) => toLayout(g, v, layout);

  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const ins = layer.inboundNodes[0]!.inboundLayers.map((l) => {
      const v = values.get(l.name);
      if (v === undefined)
        throw new Error(`onnx export: layer '${layer.name}' reads '${l.name}', not exported yet`);
      return v;
    });
    const op = opFor(layer);
    const x = ins[0]!;
    let inner: ActQuant | undefined;
    const ctx: EmitContext = {
      g,
      layer,
      cfg: layer.getConfig() as Record<string, unknown>,
      ins,
      x,
      out: layer.name,
      outShape: (layer.outputShape as (number | null)[]).slice(1) as number[],
      facts,
      to,
      weights: (base, data, dims, axis, bias) =>
        int8 ? int8.weights(base, x, data, dims, axis, bias) : floatWeights(g, base, data, dims, bias),
      quantPoint: (v, base) => {
        if (!int8) return v;
        const marked = int8.own(layer, v, base);
        inner = marked.q;
        return marked;
      },
      dynamic: passes.dynamic,
    };
    const result = op.emit(ctx);
    values.set(layer.name, int8 ? int8.after(layer, result, x, inner) : result);
  }

  const outputs = model.outputs.map((o, i) => {
    const v = values.get(o.sourceLayer.name)!;
    const name = `output${model.outputs.length > 1 ? i : ''}`;
    g.node('Identity', [to(v, 'tf')], name);
    return { name, shape: o.shape.slice(1) as number[] };
  });
  return { inputs: [input], outputs };
}
