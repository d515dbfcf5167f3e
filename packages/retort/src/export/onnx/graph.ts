/**
 * Building blocks of the ONNX writer: a node/initializer accumulator over onnx-proto messages, the
 * value record the exporter threads through the layers, the layout and padding arithmetic shared by
 * the fp32 and int8 paths, and the ModelProto around a finished graph.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { onnx as O } from 'onnx-proto';
import onnxProto from 'onnx-proto';

// A CommonJS module: its namespace is on the default export under ESM.
export const { onnx } = onnxProto;

export const F32 = onnx.TensorProto.DataType.FLOAT;
export const I64 = onnx.TensorProto.DataType.INT64;
export const I32 = onnx.TensorProto.DataType.INT32;
export const I8 = onnx.TensorProto.DataType.INT8;
export const U8 = onnx.TensorProto.DataType.UINT8;

export type Layout = 'nchw' | 'tf';

/** Per-tensor uint8 activation quantization: real = scale * (q - zp). */
export interface ActQuant {
  scale: number;
  zp: number;
}

export interface Value {
  name: string;
  layout: Layout;
  /** tfjs shape without the batch axis. */
  shape: number[];
  /** The quantization this value went through (int8 export): for bias scales and shared params. */
  q?: ActQuant;
  /** Zero padding [top, left, bottom, right] not written yet: the consuming conv absorbs it. */
  pads?: [number, number, number, number];
}

export class GraphBuilder {
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
    return this.bytes(name, F32, data, dims);
  }

  bytes(
    name: string,
    dataType: number,
    data: Float32Array | Int8Array | Uint8Array | Int32Array,
    dims: number[],
  ): string {
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

export const NHWC_TO_NCHW = [0, 3, 1, 2];
export const NCHW_TO_NHWC = [0, 2, 3, 1];

/**
 * `v`'s name in `layout`: a Transpose when `v` is a 4-D map in the other layout (onnxruntime folds
 * adjacent transposes); other ranks are the same in both.
 */
export function toLayout(g: GraphBuilder, v: Value, layout: Layout): string {
  if (v.layout === layout || v.shape.length !== 3) return v.name;
  const perm = layout === 'nchw' ? NHWC_TO_NCHW : NCHW_TO_NHWC;
  return g.node('Transpose', [v.name], g.fresh(`${v.name}.${layout}`), { perm });
}

/** Float initializers `${base}.W` of `dims` and, with a bias, `${base}.B`. */
export function floatWeights(
  g: GraphBuilder,
  base: string,
  data: Float32Array,
  dims: number[],
  bias: Float32Array | undefined,
): string[] {
  const w = g.f32(`${base}.W`, data, dims);
  return bias ? [w, g.f32(`${base}.B`, bias, [bias.length])] : [w];
}

/** A graph input or output: float, shape without the batch axis (which is `N`). */
export interface GraphIo {
  name: string;
  shape: number[];
}

/** The ModelProto bytes (IR 7, opset 13) of the graph in `g`. */
export function encodeModel(
  g: GraphBuilder,
  m: { name: string; producer: string; inputs: GraphIo[]; outputs: GraphIo[] },
): Uint8Array {
  const vi = (io: GraphIo): O.IValueInfoProto => ({
    name: io.name,
    type: {
      tensorType: {
        elemType: F32,
        shape: { dim: [{ dimParam: 'N' }, ...io.shape.map((d) => ({ dimValue: d }))] },
      },
    },
  });
  const modelProto: O.IModelProto = {
    irVersion: 7,
    producerName: m.producer,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: m.name,
      node: g.nodes,
      initializer: g.inits,
      input: m.inputs.map(vi),
      output: m.outputs.map(vi),
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(modelProto)).finish();
}

/** Transposes a row-major tensor of `shape` by `perm` (HWIO -> OIHW is [3, 2, 0, 1]). */
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
export function samePad(size: number, k: number, s: number, dilation: number): [number, number] {
  const ke = (k - 1) * dilation + 1;
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + ke - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

export function pair(v: unknown, def: number): [number, number] {
  if (v === undefined || v === null) return [def, def];
  return Array.isArray(v) ? [v[0] as number, (v[1] ?? v[0]) as number] : [v as number, v as number];
}

export function weightsOf(layer: tfl.layers.Layer): Record<string, { data: Float32Array; shape: number[] }> {
  return Object.fromEntries(
    layer.weights.map((w) => {
      const t = w.read() as tf.Tensor;
      return [w.originalName.split('/').pop()!, { data: t.dataSync() as Float32Array, shape: t.shape }];
    }),
  );
}
