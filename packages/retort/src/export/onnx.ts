/**
 * ONNX export (opset 13, IR 7) of the zoo's functional tfjs-layers models: fp32, static int8 QDQ
 * (`quant`, calibrated activation ranges) or dynamic int8 (`dynamic`, activations quantized per run).
 *
 * The ONNX model takes the same NHWC input as Retort (its first node transposes to NCHW, the layout
 * ONNX convolutions use) and gives the same outputs. Inside, each tensor carries a layout: 'nchw'
 * for 4-D maps after a conv-like op, 'tf' for tensors in tfjs's own layout (the input, reshapes,
 * permutes, rank-2 features); ops that need one layout get a Transpose only when the producer used
 * the other (onnxruntime folds adjacent transposes). Weights: HWIO kernels become OIHW, depthwise
 * kernels [kh, kw, C, m] become [C * m, 1, kh, kw] with group = C, dense kernels stay [in, out]
 * (Gemm). tfjs 'same' padding is written as explicit pads computed as tfjs does (the extra pixel
 * after), and average pooling excludes padding as tfjs does. Flatten flattens in NHWC order.
 * ZeroPadding2D whose only consumer is a 'valid' conv becomes that conv's pads.
 * An unsupported layer fails naming the layer and its class.
 *
 * Int8 (`quant`): batch norm folded into the preceding conv, weights and biases quantized (see
 * onnx/quant.ts; the weight range is the target's, onnx/target.ts), and a Q -> DQ pair on the input and after every layer, placed where
 * onnxruntime 1.30's QDQ fusions want it, so that it runs integer kernels from the stem's output
 * to the logits (Fashion-MNIST ResNet-8 at batch 64: int8/fp32 latency 0.75 -> 0.44, measured
 * interleaved). Exceptions:
 *  - the stem stays float: an input read only by convs is not quantized and those convs keep
 *    float weights (as does any conv or Dense whose input carries no quantization), because
 *    onnxruntime's int8 conv over so few input channels is slow (ResNet-8's stem on 28x28x1 at
 *    batch 64: 2.5 ms int8 vs 0.4 ms fp32); the stem's output is quantized as usual;
 *  - no pair before a ReLU: Conv/Add -> Relu -> Q (zero point 0) is fused by onnxruntime into
 *    QLinearConv/QLinearAdd; a pair before the ReLU would leave a float DQ -> Q requantization;
 *  - MaxPool, Flatten, Reshape, Permute, Dropout and unfused Pad reuse their input's parameters,
 *    so onnxruntime runs them on uint8 (it drops DQ -> op -> Q only with equal parameters);
 *  - GlobalAveragePool gets its pair before its Flatten (DQ -> GlobalAveragePool -> Q becomes
 *    QLinearGlobalAveragePool);
 *  - a linear Dense that is a model output keeps float logits (QGemm with float output).
 *
 * Dynamic int8 (`dynamic`, see onnx/dynamic.ts): no calibration; batch norm folded as above;
 * Dense layers and the convs `dynamicPlan` accepts become DynamicQuantizeLinear -> MatMulInteger
 * on int8 weights (convs on NHWC, with an im2col where the kernel or stride exceeds 1), which
 * onnxruntime fuses into DynamicQuantizeMatMul / MatMulIntegerToFloat; everything else stays fp32
 * (a global average pool over an NHWC value is a ReduceMean). 1 thread, Fashion-MNIST-sized
 * inputs, dynamic/fp32 latency at batch 1 and 64: ResNet-8 1.03-1.07 and 0.90-0.93, LightNN 0.74
 * and 0.85, MobileNetV2 (x0.5, 32x32x3) 1.04-1.07 and 0.89-0.99; static int8 is faster wherever
 * its integer kernels cover the graph (ResNet-8 0.56 and 0.46).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { onnx as O } from 'onnx-proto';
import {
  type ConvGeometry,
  type ConvShape,
  DynamicQuantizer,
  type DynamicQuantOptions,
  dynamicPlan,
} from './onnx/dynamic.js';
import {
  F32,
  GraphBuilder,
  type Layout,
  NCHW_TO_NHWC,
  NHWC_TO_NCHW,
  onnx,
  pair,
  permute,
  samePad,
  type Value,
  weightsOf,
} from './onnx/graph.js';
import { actQuant, Quantizer, type QuantSpec, type WeightGranularity } from './onnx/quant.js';
import { type Int8Target, weightQmax } from './onnx/target.js';

export { type ConvShape, type DynamicQuantOptions, dynamicPlan } from './onnx/dynamic.js';
export { permute } from './onnx/graph.js';
export {
  calibrateRanges,
  type QuantSpec,
  WEIGHT_GRANULARITIES,
  type WeightGranularity,
} from './onnx/quant.js';
export {
  INT8_TARGETS,
  type Int8Target,
  targetNotice,
  WEIGHT_QMAX,
  weightQmax,
} from './onnx/target.js';

export interface OnnxExportOptions {
  producer?: string;
  /** Calibrated ranges: writes int8 QDQ instead of fp32. */
  quant?: QuantSpec;
  /**
   * Dynamic int8 (`true` or options): int8 weights written here, activations quantized per run
   * by onnxruntime; no calibration data. Exclusive with `quant`. See onnx/dynamic.ts.
   */
  dynamic?: boolean | DynamicQuantOptions;
  /** Int8 weight scales (static or dynamic): per output channel (default) or one per tensor. */
  weights?: WeightGranularity;
  /**
   * Which CPUs the int8 file is right on (onnx/target.ts): 'portable' (default; 7-bit weights,
   * exact on every x86-64 and ARM64), 'vnni' or 'arm64' (full 8-bit weights).
   */
  target?: Int8Target;
}

/** Layers of `model` that read `layer`'s output. */
function consumersOf(layer: tfl.layers.Layer, inModel: ReadonlySet<string>): tfl.layers.Layer[] {
  return layer.outboundNodes.map((n) => n.outboundLayer).filter((l) => inModel.has(l.name));
}

/** A plain ReLU (onnxruntime removes Relu -> Q with zero point 0 and fuses the producer). */
function isRelu(layer: tfl.layers.Layer): boolean {
  const cfg = layer.getConfig();
  if (layer.getClassName() === 'Activation') return cfg['activation'] === 'relu';
  return layer.getClassName() === 'ReLU' && (cfg['maxValue'] ?? null) === null;
}

/**
 * Builds the ONNX ModelProto bytes for a functional (or sequential) tfjs-layers model: fp32,
 * int8 QDQ with `opts.quant` (from calibrateRanges), or dynamic int8 with `opts.dynamic`; int8
 * weights scaled per `opts.weights`. The input is NHWC [N, H, W, C] float, named `input`.
 */
export function exportOnnx(model: tfl.LayersModel, opts: OnnxExportOptions = {}): Uint8Array {
  const g = new GraphBuilder();
  const quant = opts.quant;
  const weightsMode = opts.weights ?? 'per-channel';
  if (weightsMode !== 'per-channel' && weightsMode !== 'per-tensor')
    throw new Error(
      `onnx export: weights must be 'per-channel' or 'per-tensor', got '${String(weightsMode)}'`,
    );
  const qmax = weightQmax(opts.target, 'onnx export');
  const qz = quant ? new Quantizer(g, weightsMode, qmax) : undefined;
  const dynamic = opts.dynamic === true ? {} : opts.dynamic || undefined;
  if (quant && dynamic)
    throw new Error('onnx export: give quant (static int8) or dynamic (dynamic int8), not both');
  const minChannels = dynamic?.minChannels;
  if (minChannels !== undefined && !(Number.isInteger(minChannels) && minChannels >= 1))
    throw new Error(`onnx export: dynamic.minChannels must be a positive integer, got ${minChannels}`);
  const dz = dynamic ? new DynamicQuantizer(g, weightsMode, qmax) : undefined;
  const inModel = new Set(model.layers.map((l) => l.name));
  const outputLayers = new Set(model.outputs.map((o) => o.sourceLayer.name));
  // Int8 (static or dynamic): batch norms that directly follow a conv (its only consumer) are
  // folded into it.
  const foldedInto = new Map<string, tfl.layers.Layer>(); // conv name -> its BN
  const foldedBn = new Set<string>();
  if (quant || dz) {
    for (const layer of model.layers) {
      const src = bnFoldTarget(layer);
      if (src) {
        foldedInto.set(src.name, layer);
        foldedBn.add(layer.name);
      }
    }
  }
  /** Q -> DQ with the calibrated range of a layer's output (no-op in fp32 or without a range). */
  const qdq = (v: Value, range: readonly [number, number] | undefined, base: string): Value =>
    qz && range !== undefined ? qz.qdq(v, actQuant(range), base) : v;
  // Int8: an input read only by convs stays float, and so do those convs (see the header).
  const stem = consumersOf(model.inputLayers[0]!, inModel);
  const floatStem =
    quant !== undefined && stem.length > 0 && stem.every((l) => l.getClassName() === 'Conv2D');
  const values = new Map<string, Value>();
  const inputT = model.inputs[0]!;
  const inShape = inputT.shape.slice(1) as number[];
  if (model.inputs.length !== 1) throw new Error('onnx export: models with one input only');
  const inputName = 'input';
  values.set(
    model.inputLayers[0]!.name,
    floatStem
      ? { name: inputName, layout: 'tf', shape: inShape }
      : qdq({ name: inputName, layout: 'tf', shape: inShape }, quant?.input, 'input'),
  );

  const to = (v: Value, layout: Layout): string => {
    if (v.layout === layout || v.shape.length !== 3) return v.name;
    const perm = layout === 'nchw' ? NHWC_TO_NCHW : NCHW_TO_NHWC;
    return g.node('Transpose', [v.name], g.fresh(`${v.name}.${layout}`), { perm });
  };

  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls === 'InputLayer') continue;
    const inbound = layer.inboundNodes[0]!;
    const ins = inbound.inboundLayers.map((l) => {
      const v = values.get(l.name);
      if (v === undefined)
        throw new Error(`onnx export: layer '${layer.name}' reads '${l.name}', not exported yet`);
      return v;
    });
    const x = ins[0]!;
    const cfg = layer.getConfig() as Record<string, unknown>;
    const out = layer.name;
    const outShape = (layer.outputShape as (number | null)[]).slice(1) as number[];
    const consumers = consumersOf(layer, inModel);
    const w = weightsOf(layer);
    let result: Value;
    /** What the int8 export puts after this layer: its own range, `sameQ` (the input's), nothing. */
    let after: 'range' | 'same' | 'none' = 'range';
    let sameQ = x.q;
    const activation = (name: string, v: Value): Value => {
      const act = (cfg['activation'] as string | undefined) ?? 'linear';
      if (act === 'linear') return v;
      const ops: Record<string, string> = { relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' };
      if (act === 'relu6') return { ...v, name: clip(v.name, 6, name) };
      if (act === 'softmax')
        return { ...v, name: g.node('Softmax', [to(v, 'tf')], name, { axis: -1 }), layout: 'tf' };
      const op = ops[act];
      if (op === undefined)
        throw new Error(`onnx export: layer '${layer.name}': activation '${act}' not supported`);
      return { ...v, name: g.node(op, [v.name], name) };
    };
    const clip = (input: string, max: number, name: string): string =>
      g.node(
        'Clip',
        [
          input,
          g.f32(g.fresh('zero'), Float32Array.of(0), []),
          g.f32(g.fresh('max'), Float32Array.of(max), []),
        ],
        name,
      );
    switch (cls) {
      case 'Conv2D':
      case 'DepthwiseConv2D': {
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
        let kernel: { data: Float32Array; dims: number[] };
        let group = 1;
        let bias = w['bias']?.data;
        let kd: { data: Float32Array; shape: number[] };
        if (cls === 'Conv2D') kd = w['kernel']!;
        else kd = w['depthwise_kernel']!;
        const bn = foldedInto.get(layer.name);
        const outC = cls === 'Conv2D' ? kd.shape[3]! : kd.shape[2]! * kd.shape[3]!;
        if (bn) {
          // Fold: W' = W * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * that + beta.
          const bw = weightsOf(bn);
          const eps = bn.getConfig()['epsilon'] as number;
          const f = Float32Array.from(
            { length: outC },
            (_, j) => (bw['gamma']?.data[j] ?? 1) / Math.sqrt(bw['moving_variance']!.data[j]! + eps),
          );
          const data = Float32Array.from(kd.data, (v, i) => v * f[i % outC]!);
          kd = { data, shape: kd.shape };
          bias = Float32Array.from(
            f,
            (fj, j) => ((bias?.[j] ?? 0) - bw['moving_mean']!.data[j]!) * fj + (bw['beta']?.data[j] ?? 0),
          );
        }
        if (cls === 'Conv2D') {
          kernel = {
            data: permute(kd.data, kd.shape, [3, 2, 0, 1]),
            dims: [kd.shape[3]!, kd.shape[2]!, kh, kw],
          };
        } else {
          const [, , c, m] = kd.shape as [number, number, number, number];
          group = c;
          kernel = { data: permute(kd.data, kd.shape, [2, 3, 0, 1]), dims: [c * m, 1, kh, kw] };
        }
        const convAttrs = { kernel_shape: [kh, kw], strides: [sh, sw], dilations: [dh, dw], pads, group };
        const convOut = cfg['activation'] && cfg['activation'] !== 'linear' ? `${out}.conv` : out;
        const shape: ConvShape = {
          depthwise: cls === 'DepthwiseConv2D',
          inChannels: kd.shape[2]!,
          outChannels: outC,
          kernel: [kh, kw],
          strides: [sh, sw],
        };
        if (dz && dynamicPlan(shape, dynamic)) {
          const geometry: ConvGeometry = {
            strides: [sh, sw],
            dilations: [dh, dw],
            pads,
            outHW: [outShape[0]!, outShape[1]!],
          };
          const conv = dz.conv(out, to(x, 'tf'), kd, bias, geometry, convOut);
          result = activation(out, { name: conv, layout: 'tf', shape: outShape });
          break;
        }
        const inputs = [to(x, 'nchw')];
        let wScales: Float32Array | null = null;
        if (qz && x.q) {
          const qw = qz.weight(`${out}.W`, kernel.data, kernel.dims, 0);
          inputs.push(qw.name);
          wScales = qw.scales;
        } else inputs.push(g.f32(`${out}.W`, kernel.data, kernel.dims));
        if (bias)
          inputs.push(
            qz && wScales
              ? qz.bias(`${out}.B`, bias, x.q?.scale, wScales)
              : g.f32(`${out}.B`, bias, [bias.length]),
          );
        const conv = g.node('Conv', inputs, convOut, convAttrs);
        result = activation(out, { name: conv, layout: 'nchw', shape: outShape });
        // Its batch norm carries the quantization.
        if (bn) after = 'none';
        break;
      }
      case 'ZeroPadding2D': {
        const p = cfg['padding'] as [[number, number], [number, number]];
        const only = consumers.length === 1 && !outputLayers.has(out) ? consumers[0]! : undefined;
        const oc = only?.getClassName();
        if (
          (oc === 'Conv2D' || oc === 'DepthwiseConv2D') &&
          (only!.getConfig()['padding'] ?? 'valid') === 'valid'
        ) {
          result = { ...x, shape: outShape, pads: [p[0][0], p[1][0], p[0][1], p[1][1]] };
          after = 'none';
          break;
        }
        const pads = g.i64(`${out}.pads`, [0, 0, p[0][0], p[1][0], 0, 0, p[0][1], p[1][1]]);
        result = {
          name: g.node('Pad', [to(x, 'nchw'), pads], out, { mode: 'constant' }),
          layout: 'nchw',
          shape: outShape,
        };
        after = 'same';
        break;
      }
      case 'BatchNormalization': {
        if (foldedBn.has(layer.name)) {
          result = { ...x, shape: outShape };
          break;
        }
        if (x.shape.length !== 3 && x.shape.length !== 1)
          throw new Error(`onnx export: layer '${layer.name}': batch norm over rank ${x.shape.length + 1}`);
        const c = x.shape.at(-1)!;
        const ones = new Float32Array(c).fill(1);
        const inputs = [
          x.shape.length === 3 ? to(x, 'nchw') : x.name,
          g.f32(`${out}.scale`, w['gamma']?.data ?? ones, [c]),
          g.f32(`${out}.bias`, w['beta']?.data ?? new Float32Array(c), [c]),
          g.f32(`${out}.mean`, w['moving_mean']!.data, [c]),
          g.f32(`${out}.var`, w['moving_variance']!.data, [c]),
        ];
        result = {
          name: g.node('BatchNormalization', inputs, out, { epsilon: cfg['epsilon'] as number }),
          layout: x.shape.length === 3 ? 'nchw' : 'tf',
          shape: outShape,
        };
        break;
      }
      case 'Activation':
        result = activation(out, { ...x, shape: outShape });
        break;
      case 'ReLU': {
        const max = (cfg['maxValue'] ?? null) as number | null;
        const name = max === null ? g.node('Relu', [x.name], out) : clip(x.name, max, out);
        result = { ...x, name, shape: outShape };
        break;
      }
      case 'Dropout':
        result = { ...x, name: g.node('Identity', [x.name], out), shape: outShape };
        after = 'same';
        break;
      case 'Add':
      case 'Multiply': {
        // ONNX broadcasts like tfjs: a squeeze-excitation gate [N, 1, 1, C] times a map is one Mul.
        const layout: Layout = ins.some((v) => v.layout === 'nchw') ? 'nchw' : 'tf';
        const names = ins.map((v) => to(v, layout));
        const op = cls === 'Add' ? 'Add' : 'Mul';
        let acc = names[0]!;
        for (let i = 1; i < names.length; i++)
          acc = g.node(op, [acc, names[i]!], i === names.length - 1 ? out : g.fresh(out));
        result = { name: acc, layout, shape: outShape };
        break;
      }
      case 'Concatenate': {
        const rank = x.shape.length + 1;
        const axisCfg = (cfg['axis'] as number | undefined) ?? -1;
        const axis = axisCfg < 0 ? rank + axisCfg : axisCfg;
        if (rank === 4 && axis === 3) {
          result = {
            name: g.node(
              'Concat',
              ins.map((v) => to(v, 'nchw')),
              out,
              { axis: 1 },
            ),
            layout: 'nchw',
            shape: outShape,
          };
        } else {
          result = {
            name: g.node(
              'Concat',
              ins.map((v) => to(v, 'tf')),
              out,
              { axis },
            ),
            layout: 'tf',
            shape: outShape,
          };
        }
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
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
        if (cls === 'AveragePooling2D') attrs['count_include_pad'] = 0;
        result = {
          name: g.node(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [to(x, 'nchw')], out, attrs),
          layout: 'nchw',
          shape: outShape,
        };
        // A max of quantized values is one of them: same parameters, so it runs on uint8.
        if (cls === 'MaxPooling2D') after = 'same';
        break;
      }
      case 'GlobalAveragePooling2D': {
        if (dz && x.layout === 'tf') {
          // NHWC after a dynamic int8 conv: a mean over H and W needs no transpose.
          const mean = g.node('ReduceMean', [x.name], out, { axes: [1, 2], keepdims: 0 });
          result = { name: mean, layout: 'tf', shape: outShape };
          break;
        }
        let pooled: Value = {
          name: g.node('GlobalAveragePool', [to(x, 'nchw')], `${out}.pool`),
          layout: 'nchw',
          shape: [1, 1, outShape[0]!],
        };
        pooled = qdq(pooled, quant?.ranges.get(layer.name), `${out}.pool`);
        result = { name: g.node('Flatten', [pooled.name], out, { axis: 1 }), layout: 'tf', shape: outShape };
        after = 'same';
        sameQ = pooled.q;
        break;
      }
      case 'Flatten':
        result = { name: g.node('Flatten', [to(x, 'tf')], out, { axis: 1 }), layout: 'tf', shape: outShape };
        after = 'same';
        break;
      case 'Reshape': {
        const shape = g.i64(`${out}.shape`, [-1, ...(cfg['targetShape'] as number[])]);
        result = { name: g.node('Reshape', [to(x, 'tf'), shape], out), layout: 'tf', shape: outShape };
        after = 'same';
        break;
      }
      case 'Permute': {
        const dims = cfg['dims'] as number[];
        result = {
          name: g.node('Transpose', [to(x, 'tf')], out, { perm: [0, ...dims] }),
          layout: 'tf',
          shape: outShape,
        };
        after = 'same';
        break;
      }
      case 'Dense': {
        if (x.shape.length !== 1)
          throw new Error(`onnx export: layer '${layer.name}': Dense on a rank-${x.shape.length + 1} input`);
        const k = w['kernel']!;
        const act = (cfg['activation'] as string | undefined) ?? 'linear';
        if (dz) {
          const mm = dz.dense(out, x.name, k, w['bias']?.data, act === 'linear' ? out : `${out}.gemm`);
          result = activation(out, { name: mm, layout: 'tf', shape: outShape });
          break;
        }
        const inputs = [x.name];
        let wScales: Float32Array | null = null;
        if (qz && x.q) {
          const qw = qz.weight(`${out}.W`, k.data, k.shape, 1);
          inputs.push(qw.name);
          wScales = qw.scales;
        } else inputs.push(g.f32(`${out}.W`, k.data, k.shape));
        if (w['bias'])
          inputs.push(
            qz && wScales
              ? qz.bias(`${out}.B`, w['bias'].data, x.q?.scale, wScales)
              : g.f32(`${out}.B`, w['bias'].data, w['bias'].shape),
          );
        const gemm = g.node('Gemm', inputs, act === 'linear' ? out : `${out}.gemm`);
        result = activation(out, { name: gemm, layout: 'tf', shape: outShape });
        // Logits: QGemm writes float directly; a Q -> DQ there would only round them.
        if (act === 'linear' && outputLayers.has(out)) after = 'none';
        break;
      }
      case 'RetortChannelSlice': {
        const start = cfg['start'] as number;
        const size = cfg['size'] as number;
        const nchw = x.shape.length === 3;
        const src = nchw ? to(x, 'nchw') : x.name;
        const axis = nchw ? 1 : x.shape.length;
        result = {
          name: g.node(
            'Slice',
            [
              src,
              g.i64(`${out}.starts`, [start]),
              g.i64(`${out}.ends`, [start + size]),
              g.i64(`${out}.axes`, [axis]),
            ],
            out,
          ),
          layout: nchw ? 'nchw' : x.layout,
          shape: outShape,
        };
        after = 'same';
        break;
      }
      default:
        throw new Error(`onnx export: layer '${layer.name}' of class ${cls} is not supported`);
    }
    if (qz) {
      // The ReLU(s) reading this output quantize it (Relu -> Q is fused into this layer's op).
      if (after === 'range' && consumers.length > 0 && !outputLayers.has(out) && consumers.every(isRelu))
        after = 'none';
      const plain: Value = { ...result };
      delete plain.q;
      if (after === 'range') result = qdq(plain, quant!.ranges.get(layer.name), out);
      else if (after === 'same') result = sameQ ? qz.qdq(plain, sameQ, out) : plain;
      // A folded pad passes its input through untouched, quantization included.
      else if (!result.pads) result = plain;
    }
    values.set(layer.name, result);
  }
  const outputs = model.outputs.map((o, i) => {
    const producer = o.sourceLayer.name;
    const v = values.get(producer)!;
    const name = `output${model.outputs.length > 1 ? i : ''}`;
    g.node('Identity', [to(v, 'tf')], name);
    return { name, shape: o.shape.slice(1) as number[] };
  });
  const vi = (name: string, shape: (number | string)[]): O.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: F32,
        shape: { dim: shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
  const modelProto: O.IModelProto = {
    irVersion: 7,
    producerName: opts.producer ?? 'retort',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: model.name,
      node: g.nodes,
      initializer: g.inits,
      input: [vi(inputName, ['N', ...inShape])],
      output: outputs.map((o) => vi(o.name, ['N', ...o.shape])),
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(modelProto)).finish();
}

/** Where the static int8 export quantizes activations with ranges of their own (see int8QuantPoints). */
export interface Int8QuantPoints {
  /** Whether it reads `QuantSpec.input` (false when only convs read the input: the float stem). */
  input: boolean;
  /** The layers whose `QuantSpec.ranges` entry it reads, in model order. */
  layers: string[];
}

/**
 * The activations `exportOnnx(model, { quant })` puts a Q -> DQ pair on with a range of its own.
 * A layer's range there is that of its output as the int8 graph computes it: a folded BN's is its
 * conv's output, a ReLU's that of the Conv/Add + Relu onnxruntime fuses, a global average pool's
 * the pooled value. Every other pair reuses its input's parameters (MaxPool, Flatten, Reshape,
 * Permute, Dropout, unfused Pad, channel slices), so a value already on that grid stays on it.
 * Mirrors the placement rules of exportOnnx above (test/compress/act-qat.test.ts checks that a
 * spec holding only these ranges exports the same bytes as a full one, and that each is read);
 * activation QAT (compress/quantize/act-qat.ts) fake-quantizes exactly these tensors.
 */
export function int8QuantPoints(model: tfl.LayersModel): Int8QuantPoints {
  if (model.inputs.length !== 1) throw new Error('onnx export: models with one input only');
  const inModel = new Set(model.layers.map((l) => l.name));
  const outputLayers = new Set(model.outputs.map((o) => o.sourceLayer.name));
  const folded = new Set<string>(); // convs whose only consumer is a batch norm folded into them
  for (const layer of model.layers) {
    const src = bnFoldTarget(layer);
    if (src) folded.add(src.name);
  }
  const stem = consumersOf(model.inputLayers[0]!, inModel);
  const input = !(stem.length > 0 && stem.every((l) => l.getClassName() === 'Conv2D'));
  const layers: string[] = [];
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls === 'InputLayer') continue;
    const out = layer.name;
    const consumers = consumersOf(layer, inModel);
    let after: 'range' | 'other' = 'range';
    switch (cls) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
        if (folded.has(out)) after = 'other';
        break;
      case 'ZeroPadding2D':
      case 'Dropout':
      case 'MaxPooling2D':
      case 'Flatten':
      case 'Reshape':
      case 'Permute':
      case 'RetortChannelSlice':
        after = 'other';
        break;
      case 'GlobalAveragePooling2D':
        // Its pair sits on the pooled value, before the Flatten, whatever reads it.
        layers.push(out);
        continue;
      case 'Dense':
        if (
          ((layer.getConfig()['activation'] as string | undefined) ?? 'linear') === 'linear' &&
          outputLayers.has(out)
        )
          after = 'other';
        break;
      case 'BatchNormalization':
      case 'Activation':
      case 'ReLU':
      case 'Add':
      case 'Multiply':
      case 'Concatenate':
      case 'AveragePooling2D':
        break;
      default:
        throw new Error(`onnx export: layer '${layer.name}' of class ${cls} is not supported`);
    }
    if (after === 'range' && consumers.length > 0 && !outputLayers.has(out) && consumers.every(isRelu))
      after = 'other';
    if (after === 'range') layers.push(out);
  }
  return { input, layers };
}

/**
 * The conv a batch norm folds into for the int8 exports: a Conv2D or DepthwiseConv2D without a
 * fused activation whose only consumer is this batch norm; null for any other layer.
 */
function bnFoldTarget(layer: tfl.layers.Layer): tfl.layers.Layer | null {
  if (layer.getClassName() !== 'BatchNormalization') return null;
  const src = layer.inboundNodes[0]!.inboundLayers[0]!;
  const cls = src.getClassName();
  return (cls === 'Conv2D' || cls === 'DepthwiseConv2D') &&
    src.outboundNodes.length === 1 &&
    (src.getConfig()['activation'] ?? 'linear') === 'linear'
    ? src
    : null;
}
