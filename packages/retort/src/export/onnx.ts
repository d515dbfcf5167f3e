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
}

const F32 = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;

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
export function exportOnnx(model: tfl.LayersModel, opts: { producer?: string } = {}): Uint8Array {
  const g = new GraphBuilder();
  const values = new Map<string, Value>();
  const inputT = model.inputs[0]!;
  const inShape = inputT.shape.slice(1) as number[];
  if (model.inputs.length !== 1) throw new Error('onnx export: models with one input only');
  const inputName = 'input';
  values.set(model.inputLayers[0]!.name, { name: inputName, layout: 'tf', shape: inShape });

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
        let kernelName: string;
        let group = 1;
        if (cls === 'Conv2D') {
          const k = w['kernel']!;
          kernelName = g.f32(`${out}.W`, permute(k.data, k.shape, [3, 2, 0, 1]), [
            k.shape[3]!,
            k.shape[2]!,
            kh,
            kw,
          ]);
        } else {
          const k = w['depthwise_kernel']!;
          const [, , c, m] = k.shape as [number, number, number, number];
          group = c;
          kernelName = g.f32(`${out}.W`, permute(k.data, k.shape, [2, 3, 0, 1]), [c * m, 1, kh, kw]);
        }
        const inputs = [to(x, 'nchw'), kernelName];
        if (w['bias']) inputs.push(g.f32(`${out}.B`, w['bias'].data, w['bias'].shape));
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
        const inputs = [x.name, g.f32(`${out}.W`, k.data, k.shape)];
        if (w['bias']) inputs.push(g.f32(`${out}.B`, w['bias'].data, w['bias'].shape));
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
