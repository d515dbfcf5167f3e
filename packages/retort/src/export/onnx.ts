/**
 * ONNX export (opset 13, IR 7) of the zoo's functional tfjs-layers models, fp32.
 *
 * The ONNX model takes the same NHWC input as Retort (its first node transposes to NCHW, the layout
 * ONNX convolutions use) and gives the same outputs. Inside, each tensor carries a layout: 'nchw'
 * for 4-D maps after a conv-like op, 'tf' for tensors in tfjs's own layout (the input, reshapes,
 * permutes, rank-2 features); ops that need one layout get a Transpose only when the producer used
 * the other (onnxruntime folds adjacent transposes). Weights: HWIO kernels become OIHW, depthwise
 * kernels [kh, kw, C, m] become [C * m, 1, kh, kw] with group = C, dense kernels stay [in, out]
 * (Gemm). tfjs 'same' padding is written as explicit pads computed as tfjs does (the extra pixel
 * after), and average pooling excludes padding as tfjs does. Flatten flattens in NHWC order.
 * An unsupported layer fails naming the layer and its class.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { model as tflModel } from '@tensorflow/tfjs-layers';
import type { onnx as O } from 'onnx-proto';
import onnxProto from 'onnx-proto';

// A CommonJS module: its namespace is on the default export under ESM.
const { onnx } = onnxProto;

type Layout = 'nchw' | 'tf';
interface Value {
  name: string;
  layout: Layout;
  /** tfjs shape without the batch axis. */
  shape: number[];
  /** Scale of the quantization this value went through (int8 export), for bias scales. */
  qscale?: number;
}

/**
 * Int8 QDQ export (opset 13): activations quantized per tensor (uint8, asymmetric, from calibrated
 * ranges: every layer output and the input), weights int8 symmetric per output channel, biases
 * int32 with scale = input scale x weight scale, batch norm folded into the preceding conv first.
 * onnxruntime fuses DequantizeLinear -> Conv/Gemm -> QuantizeLinear into integer kernels.
 */
export interface QuantSpec {
  /** [lo, hi] of the model input and of each layer's output, by layer name (see calibrateRanges). */
  ranges: ReadonlyMap<string, readonly [number, number]>;
  input: readonly [number, number];
}

const F32 = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;
const I32 = onnx.TensorProto.DataType.INT32;
const I8 = onnx.TensorProto.DataType.INT8;
const U8 = onnx.TensorProto.DataType.UINT8;

class GraphBuilder {
  nodes: O.INodeProto[] = [];
  inits: O.ITensorProto[] = [];
  private n = 0;

  fresh(base: string): string {
    return `${base}__${this.n++}`;
  }

  node(
    op: string,
    inputs: string[],
    output: string,
    attrs: Record<string, number | number[] | string> = {},
  ): string {
    const attribute: O.IAttributeProto[] = Object.entries(attrs).map(([name, v]) =>
      typeof v === 'string'
        ? { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) }
        : Array.isArray(v)
          ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v }
          : Number.isInteger(v) && !['epsilon', 'alpha', 'beta', 'min', 'max'].includes(name)
            ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v }
            : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v },
    );
    this.nodes.push({ opType: op, input: inputs, output: [output], name: output, attribute });
    return output;
  }

  f32(name: string, data: Float32Array, dims: number[]): string {
    this.inits.push({
      name,
      dataType: F32,
      dims,
      rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
    });
    return name;
  }

  bytes(name: string, dataType: number, data: Int8Array | Uint8Array | Int32Array, dims: number[]): string {
    this.inits.push({
      name,
      dataType,
      dims,
      rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
    });
    return name;
  }

  i64(name: string, data: number[]): string {
    const b = new BigInt64Array(data.map((x) => BigInt(x)));
    this.inits.push({ name, dataType: I64, dims: [data.length], rawData: new Uint8Array(b.buffer) });
    return name;
  }
}

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

/** Transposes a [..] HWIO-like array: generic permutation of a row-major tensor. */
export function permute(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const out = new Float32Array(data.length);
  const outShape = perm.map((p) => shape[p]!);
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let rem = o;
    for (let d = outShape.length - 1; d >= 0; d--) {
      idx[d] = rem % outShape[d]!;
      rem = Math.floor(rem / outShape[d]!);
    }
    let src = 0;
    for (let d = 0; d < perm.length; d++) src += idx[d]! * stride[perm[d]!]!;
    out[o] = data[src]!;
  }
  return out;
}

/** tfjs 'same' padding for one spatial axis: [before, after]. */
function samePad(size: number, k: number, s: number, dilation: number): [number, number] {
  const ke = (k - 1) * dilation + 1;
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + ke - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

function pair(v: unknown, def: number): [number, number] {
  if (v === undefined || v === null) return [def, def];
  return Array.isArray(v) ? [v[0] as number, (v[1] ?? v[0]) as number] : [v as number, v as number];
}

function weightsOf(layer: tfl.layers.Layer): Record<string, { data: Float32Array; shape: number[] }> {
  return Object.fromEntries(
    layer.weights.map((w) => {
      const t = w.read() as tf.Tensor;
      return [w.originalName.split('/').pop()!, { data: t.dataSync() as Float32Array, shape: t.shape }];
    }),
  );
}

/** Builds the ONNX ModelProto bytes for a functional (or sequential) tfjs-layers model. */
export function exportOnnx(
  model: tfl.LayersModel,
  opts: { producer?: string; quant?: QuantSpec } = {},
): Uint8Array {
  const g = new GraphBuilder();
  const quant = opts.quant;
  // Int8: batch norms that directly follow a conv (its only consumer) are folded into it.
  const foldedInto = new Map<string, tfl.layers.Layer>(); // conv name -> its BN
  const foldedBn = new Set<string>();
  if (quant) {
    for (const layer of model.layers) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const src = layer.inboundNodes[0]!.inboundLayers[0]!;
      const cls = src.getClassName();
      if (
        (cls === 'Conv2D' || cls === 'DepthwiseConv2D') &&
        src.outboundNodes.length === 1 &&
        (src.getConfig()['activation'] ?? 'linear') === 'linear'
      ) {
        foldedInto.set(src.name, layer);
        foldedBn.add(layer.name);
      }
    }
  }
  /** Q -> DQ of a float value with the range of `layer`'s output (uint8 asymmetric). */
  const qdq = (v: Value, range: readonly [number, number] | undefined, base: string): Value => {
    if (!quant || range === undefined) return v;
    const lo = Math.min(range[0], 0);
    const hi = Math.max(range[1], 0);
    const scale = hi > lo ? (hi - lo) / 255 : 1;
    const zp = Math.min(255, Math.max(0, Math.round(-lo / scale)));
    const sName = g.f32(g.fresh(`${base}.scale`), Float32Array.of(scale), []);
    const zName = g.bytes(g.fresh(`${base}.zp`), U8, Uint8Array.of(zp), []);
    const q = g.node('QuantizeLinear', [v.name, sName, zName], g.fresh(`${base}.q`));
    return {
      ...v,
      name: g.node('DequantizeLinear', [q, sName, zName], g.fresh(`${base}.dq`)),
      qscale: scale,
    };
  };
  /** An int8 per-channel weight (symmetric) behind a DequantizeLinear; returns its name and scales. */
  const qWeight = (
    base: string,
    data: Float32Array,
    dims: number[],
    axis: number,
  ): { name: string; scales: Float32Array } => {
    const c = dims[axis]!;
    const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const maxAbs = new Float32Array(c);
    for (let i = 0; i < data.length; i++) {
      const ch = Math.floor(i / inner) % c;
      maxAbs[ch] = Math.max(maxAbs[ch]!, Math.abs(data[i]!));
    }
    const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / 127 : 1));
    const q = Int8Array.from(data, (v, i) =>
      Math.max(-127, Math.min(127, Math.round(v / scales[Math.floor(i / inner) % c]!))),
    );
    const qName = g.bytes(`${base}.q`, I8, q, dims);
    const sName = g.f32(`${base}.scale`, scales, [c]);
    const zName = g.bytes(`${base}.zp`, I8, new Int8Array(c), [c]);
    return { name: g.node('DequantizeLinear', [qName, sName, zName], `${base}.dq`, { axis }), scales };
  };
  /** Bias as int32 with scale input scale x weight scale per channel (float when the input has no scale). */
  const qBias = (
    base: string,
    bias: Float32Array,
    inScale: number | undefined,
    wScales: Float32Array,
  ): string => {
    if (inScale === undefined) return g.f32(base, bias, [bias.length]);
    const s = Float32Array.from(wScales, (w) => w * inScale);
    const q = Int32Array.from(bias, (b, i) => Math.round(b / s[i]!));
    const qName = g.bytes(`${base}.q`, I32, q, [bias.length]);
    const sName = g.f32(`${base}.scale`, s, [bias.length]);
    const zName = g.bytes(`${base}.zp`, I32, new Int32Array(bias.length), [bias.length]);
    return g.node('DequantizeLinear', [qName, sName, zName], `${base}.dq`, { axis: 0 });
  };
  const values = new Map<string, Value>();
  const inputT = model.inputs[0]!;
  const inShape = inputT.shape.slice(1) as number[];
  if (model.inputs.length !== 1) throw new Error('onnx export: models with one input only');
  const inputName = 'input';
  values.set(
    model.inputLayers[0]!.name,
    qdq({ name: inputName, layout: 'tf', shape: inShape }, quant?.input, 'input'),
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
    const ins = inbound.inboundLayers.map((l, i) => {
      const v = values.get(l.name);
      if (v === undefined)
        throw new Error(`onnx export: layer '${layer.name}' reads '${l.name}', not exported yet`);
      void i;
      return v;
    });
    const x = ins[0]!;
    const cfg = layer.getConfig() as Record<string, unknown>;
    const out = layer.name;
    const outShape = (layer.outputShape as (number | null)[]).slice(1) as number[];
    const w = weightsOf(layer);
    let result: Value;
    const activation = (name: string, v: Value): Value => {
      const act = (cfg['activation'] as string | undefined) ?? 'linear';
      if (act === 'linear') return v;
      const ops: Record<string, string> = { relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' };
      if (act === 'relu6')
        return {
          ...v,
          name: g.node(
            'Clip',
            [
              v.name,
              g.f32(g.fresh('zero'), Float32Array.of(0), []),
              g.f32(g.fresh('six'), Float32Array.of(6), []),
            ],
            name,
          ),
        };
      if (act === 'softmax')
        return { ...v, name: g.node('Softmax', [to(v, 'tf')], name, { axis: -1 }), layout: 'tf' };
      const op = ops[act];
      if (op === undefined)
        throw new Error(`onnx export: layer '${layer.name}': activation '${act}' not supported`);
      return { ...v, name: g.node(op, [v.name], name) };
    };
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
        }
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
        const xin = to(x, 'nchw');
        const inputs = [xin];
        let wScales: Float32Array | null = null;
        if (quant) {
          const qw = qWeight(`${out}.W`, kernel.data, kernel.dims, 0);
          inputs.push(qw.name);
          wScales = qw.scales;
        } else inputs.push(g.f32(`${out}.W`, kernel.data, kernel.dims));
        if (bias)
          inputs.push(
            wScales ? qBias(`${out}.B`, bias, x.qscale, wScales) : g.f32(`${out}.B`, bias, [bias.length]),
          );
        const conv = g.node(
          'Conv',
          inputs,
          cfg['activation'] && cfg['activation'] !== 'linear' ? `${out}.conv` : out,
          {
            kernel_shape: [kh, kw],
            strides: [sh, sw],
            dilations: [dh, dw],
            pads,
            group,
          },
        );
        result = activation(out, { name: conv, layout: 'nchw', shape: outShape });
        break;
      }
      case 'ZeroPadding2D': {
        const p = cfg['padding'] as [[number, number], [number, number]];
        const pads = g.i64(`${out}.pads`, [0, 0, p[0][0], p[1][0], 0, 0, p[0][1], p[1][1]]);
        result = {
          name: g.node('Pad', [to(x, 'nchw'), pads], out, { mode: 'constant' }),
          layout: 'nchw',
          shape: outShape,
        };
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
      case 'ReLU':
        result = { ...x, name: g.node('Relu', [x.name], out), shape: outShape };
        break;
      case 'Dropout':
        result = { ...x, name: g.node('Identity', [x.name], out), shape: outShape };
        break;
      case 'Add': {
        const layout: Layout = ins.some((v) => v.layout === 'nchw') ? 'nchw' : 'tf';
        const names = ins.map((v) => to(v, layout));
        let acc = names[0]!;
        for (let i = 1; i < names.length; i++)
          acc = g.node('Add', [acc, names[i]!], i === names.length - 1 ? out : g.fresh(out));
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
        break;
      }
      case 'GlobalAveragePooling2D': {
        const pooled = g.node('GlobalAveragePool', [to(x, 'nchw')], `${out}.pool`);
        result = { name: g.node('Flatten', [pooled], out, { axis: 1 }), layout: 'tf', shape: outShape };
        break;
      }
      case 'Flatten':
        result = { name: g.node('Flatten', [to(x, 'tf')], out, { axis: 1 }), layout: 'tf', shape: outShape };
        break;
      case 'Reshape': {
        const shape = g.i64(`${out}.shape`, [-1, ...(cfg['targetShape'] as number[])]);
        result = { name: g.node('Reshape', [to(x, 'tf'), shape], out), layout: 'tf', shape: outShape };
        break;
      }
      case 'Permute': {
        const dims = cfg['dims'] as number[];
        result = {
          name: g.node('Transpose', [to(x, 'tf')], out, { perm: [0, ...dims] }),
          layout: 'tf',
          shape: outShape,
        };
        break;
      }
      case 'Dense': {
        if (x.shape.length !== 1)
          throw new Error(`onnx export: layer '${layer.name}': Dense on a rank-${x.shape.length + 1} input`);
        const k = w['kernel']!;
        const inputs = [x.name];
        let wScales: Float32Array | null = null;
        if (quant) {
          const qw = qWeight(`${out}.W`, k.data, k.shape, 1);
          inputs.push(qw.name);
          wScales = qw.scales;
        } else inputs.push(g.f32(`${out}.W`, k.data, k.shape));
        if (w['bias'])
          inputs.push(
            wScales
              ? qBias(`${out}.B`, w['bias'].data, x.qscale, wScales)
              : g.f32(`${out}.B`, w['bias'].data, w['bias'].shape),
          );
        const act = (cfg['activation'] as string | undefined) ?? 'linear';
        const gemm = g.node('Gemm', inputs, act === 'linear' ? out : `${out}.gemm`);
        result = activation(out, { name: gemm, layout: 'tf', shape: outShape });
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
        break;
      }
      default:
        throw new Error(`onnx export: layer '${layer.name}' of class ${cls} is not supported`);
    }
    if (
      quant &&
      !foldedInto.has(layer.name) &&
      cls !== 'Dropout' &&
      cls !== 'Flatten' &&
      cls !== 'Reshape' &&
      cls !== 'Permute'
    )
      result = qdq(result, quant.ranges.get(layer.name), out);
    else if (quant)
      result = {
        ...result,
        ...(x.qscale !== undefined && !foldedInto.has(layer.name) ? { qscale: x.qscale } : {}),
      };
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

/**
 * Min-max ranges of the input and of every layer's output over calibration batches (inference
 * mode), for `exportOnnx(model, { quant })`. Batches are NHWC float tensors as the model takes them.
 */
export function calibrateRanges(model: tfl.LayersModel, batches: readonly tf.Tensor[]): QuantSpec {
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  const probe = tflModel({
    inputs: model.inputs,
    outputs: layers.map((l) => l.output as tfl.SymbolicTensor),
  });
  const ranges = new Map<string, [number, number]>();
  let input: [number, number] = [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  const widen = (r: [number, number] | undefined, t: tf.Tensor): [number, number] => {
    const d = t.dataSync();
    let lo = r?.[0] ?? Number.POSITIVE_INFINITY;
    let hi = r?.[1] ?? Number.NEGATIVE_INFINITY;
    for (const v of d) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return [lo, hi];
  };
  for (const b of batches) {
    input = widen(input, b);
    const outs = probe.predict(b) as tf.Tensor | tf.Tensor[];
    const list = Array.isArray(outs) ? outs : [outs];
    for (const [i, l] of layers.entries()) ranges.set(l.name, widen(ranges.get(l.name), list[i]!));
    for (const t of list) t.dispose();
  }
  return { ranges, input };
}
