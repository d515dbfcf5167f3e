/**
 * Convolutions of the ONNX export: Conv2D and DepthwiseConv2D as ONNX Conv on NCHW. HWIO kernels
 * become OIHW, depthwise kernels [kh, kw, C, m] become [C * m, 1, kh, kw] with group = C. tfjs
 * 'same' padding is written as explicit pads computed as tfjs does (the extra pixel after); a
 * 'valid' conv takes the pads of a ZeroPadding2D folded into it (ops-shape.ts).
 *
 * Int8 exports (static or dynamic) fold a batch norm that directly follows the conv into its
 * weights and bias. The dynamic export runs the convs `dynamicPlan` accepts as MatMulInteger on
 * NHWC (dynamic.ts); the static one quantizes weights and bias when the input is quantized.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { type ConvGeometry, type ConvShape, dynamicPlan } from './dynamic.js';
import type { EmitContext, GraphFacts, Int8Placement, OpTable } from './emit.js';
import { pair, permute, samePad, type Value, weightsOf } from './graph.js';
import { applyActivation } from './ops-activation.js';

type Weight = { data: Float32Array; shape: number[] };

/** Fold: W' = W * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * that + beta. */
function foldBn(
  bn: tfl.layers.Layer,
  kd: Weight,
  bias: Float32Array | undefined,
  outC: number,
): { kd: Weight; bias: Float32Array } {
  const bw = weightsOf(bn);
  const eps = bn.getConfig()['epsilon'] as number;
  const f = Float32Array.from(
    { length: outC },
    (_, j) => (bw['gamma']?.data[j] ?? 1) / Math.sqrt(bw['moving_variance']!.data[j]! + eps),
  );
  const data = Float32Array.from(kd.data, (v, i) => v * f[i % outC]!);
  return {
    kd: { data, shape: kd.shape },
    bias: Float32Array.from(
      f,
      (fj, j) => ((bias?.[j] ?? 0) - bw['moving_mean']!.data[j]!) * fj + (bw['beta']?.data[j] ?? 0),
    ),
  };
}

/** The ONNX Conv weight of a tfjs kernel: HWIO -> OIHW; depthwise [kh, kw, C, m] -> [C * m, 1, kh, kw]. */
function onnxKernel(kd: Weight, depthwise: boolean): { data: Float32Array; dims: number[]; group: number } {
  // m: the output channels of a Conv2D, the channel multiplier of a depthwise conv.
  const [kh, kw, c, m] = kd.shape as [number, number, number, number];
  if (!depthwise) return { data: permute(kd.data, kd.shape, [3, 2, 0, 1]), dims: [m, c, kh, kw], group: 1 };
  return { data: permute(kd.data, kd.shape, [2, 3, 0, 1]), dims: [c * m, 1, kh, kw], group: c };
}

function emitConv(ctx: EmitContext, depthwise: boolean): Value {
  const { g, layer, cfg, x, out, outShape } = ctx;
  const w = weightsOf(layer);
  const [kh, kw] = pair(cfg['kernelSize'], 1);
  const [sh, sw] = pair(cfg['strides'], 1);
  const [dh, dw] = pair(cfg['dilationRate'], 1);
  const [h, wd] = x.shape as [number, number, number];
  let pads = [0, 0, 0, 0];
  if (cfg['padding'] === 'same') {
    const [pt, pb] = samePad(h, kh, sh, dh);
    const [pl, pr] = samePad(wd, kw, sw, dw);
    pads = [pt, pl, pb, pr];
  } else if (x.pads) pads = [x.pads[0], x.pads[1], x.pads[2], x.pads[3]];
  let bias = w['bias']?.data;
  let kd = depthwise ? w['depthwise_kernel']! : w['kernel']!;
  const bn = ctx.facts.bnOf.get(layer.name);
  const outC = depthwise ? kd.shape[2]! * kd.shape[3]! : kd.shape[3]!;
  if (bn) ({ kd, bias } = foldBn(bn, kd, bias, outC));
  const { group, ...kernel } = onnxKernel(kd, depthwise);
  const convAttrs = { kernel_shape: [kh, kw], strides: [sh, sw], dilations: [dh, dw], pads, group };
  const convOut = cfg['activation'] && cfg['activation'] !== 'linear' ? `${out}.conv` : out;
  const shape: ConvShape = {
    depthwise,
    inChannels: kd.shape[2]!,
    outChannels: outC,
    kernel: [kh, kw],
    strides: [sh, sw],
  };
  if (ctx.dynamic && dynamicPlan(shape, ctx.dynamic.opts)) {
    const geometry: ConvGeometry = {
      strides: [sh, sw],
      dilations: [dh, dw],
      pads,
      outHW: [outShape[0]!, outShape[1]!],
    };
    const conv = ctx.dynamic.dz.conv(out, ctx.to(x, 'tf'), kd, bias, geometry, convOut);
    return applyActivation(ctx, out, { name: conv, layout: 'tf', shape: outShape });
  }
  const inputs = [ctx.to(x, 'nchw'), ...ctx.weights(out, kernel.data, kernel.dims, 0, bias)];
  const conv = g.node('Conv', inputs, convOut, convAttrs);
  return applyActivation(ctx, out, { name: conv, layout: 'nchw', shape: outShape });
}

/** Its folded batch norm carries the quantization. */
const convInt8 = (layer: tfl.layers.Layer, facts: GraphFacts): Int8Placement =>
  facts.bnOf.has(layer.name) ? 'none' : 'own';

export const CONV_OPS: OpTable = {
  Conv2D: { emit: (ctx) => emitConv(ctx, false), int8: convInt8 },
  DepthwiseConv2D: { emit: (ctx) => emitConv(ctx, true), int8: convInt8 },
};
