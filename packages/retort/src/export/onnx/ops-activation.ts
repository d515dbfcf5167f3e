/**
 * Activations of the ONNX export: Activation and ReLU layers, and the `activation` a conv or Dense
 * carries fused (relu, relu6, sigmoid, tanh, softmax; linear writes nothing).
 */
import type { EmitContext, OpTable } from './emit.js';
import type { GraphBuilder, Value } from './graph.js';

const ELEMENTWISE: Record<string, string> = { relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' };

/** Clip(input, 0, max) named `name`; ReLU6 and ReLU with maxValue. */
export function clip(g: GraphBuilder, input: string, max: number, name: string): string {
  return g.node(
    'Clip',
    [input, g.f32(g.fresh('zero'), Float32Array.of(0), []), g.f32(g.fresh('max'), Float32Array.of(max), [])],
    name,
  );
}

/**
 * The layer's `activation` (config key) applied to `v`, its output named `name`; `v` itself for
 * linear. Softmax runs over the last tfjs axis, so its input goes to the tfjs layout first.
 */
export function applyActivation(ctx: EmitContext, name: string, v: Value): Value {
  const { g, layer } = ctx;
  const act = (ctx.cfg['activation'] as string | undefined) ?? 'linear';
  if (act === 'linear') return v;
  if (act === 'relu6') return { ...v, name: clip(g, v.name, 6, name) };
  if (act === 'softmax')
    return { ...v, name: g.node('Softmax', [ctx.to(v, 'tf')], name, { axis: -1 }), layout: 'tf' };
  const op = ELEMENTWISE[act];
  if (op === undefined)
    throw new Error(`onnx export: layer '${layer.name}': activation '${act}' not supported`);
  return { ...v, name: g.node(op, [v.name], name) };
}

export const ACTIVATION_OPS: OpTable = {
  Activation: {
    emit: (ctx) => applyActivation(ctx, ctx.out, { ...ctx.x, shape: ctx.outShape }),
    int8: 'own',
  },
  ReLU: {
    emit: ({ g, cfg, x, out, outShape }) => {
      const max = (cfg['maxValue'] ?? null) as number | null;
      const name = max === null ? g.node('Relu', [x.name], out) : clip(g, x.name, max, out);
      return { ...x, name, shape: outShape };
    },
    int8: 'own',
  },
};
