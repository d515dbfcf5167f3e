/**
 * A reference of how onnxruntime's uint8 x int8 kernels multiply on x86-64 CPUs without VNNI, run
 * over an exported int8 model's own weights and the activations it really computes.
 *
 * Off VNNI (AVX2, and AVX-512 without VNNI) the GEMM and convolution kernels use VPMADDUBSW: it
 * multiplies unsigned activation bytes by signed weight bytes and adds each pair of neighbouring
 * products along the reduction axis into one int16, saturating at [-32768, 32767]; the saturated
 * halves are then summed in int32 (VPMADDWD). A saturated pair is a wrong result that no later
 * step repairs. This module counts, for each integer layer, the pairs a[k] * w[k] + a[k+1] * w[k+1]
 * (k even) that leave the int16 range, so that an export can be shown right (0 pairs) or wrong
 * off VNNI without such a CPU at hand. With VNNI the four products of a group are summed in int32
 * and none of this applies; depthwise convolutions subtract the zero point in 16 bits and
 * multiply-add 16-bit values into int32 (onnxruntime's depthwise kernels), so they are not counted.
 *
 * Which layers and which bytes:
 *  - dynamic int8 (MatMulInteger): the uint8 A input as onnxruntime computes it (the im2col rows
 *    for convs), K the last axis; pairs run over the whole K as onnxruntime packs it;
 *  - static QDQ (Conv / Gemm whose weight is DequantizeLinear of an int8 initializer and whose
 *    input comes from a DequantizeLinear): the uint8 values are recovered from the float input
 *    with that DequantizeLinear's scale and zero point; a conv's rows are taken in (kh, kw, c)
 *    order with padding at the zero point, and pairs run over channels within one kernel position
 *    (the NHWC layout onnxruntime's symmetric conv kernels read).
 */
import type { onnx as O } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { loadOrt } from '../util/ort.js';

const { onnx } = onnxProto;

const INT16_MAX = 32767;
const INT16_MIN = -32768;
const { INT8, UINT8, FLOAT } = onnx.TensorProto.DataType;

/** What one integer layer's pairs did. */
export interface LayerSaturation {
  /** The ONNX node (its output name). */
  node: string;
  op: 'MatMulInteger' | 'Conv' | 'Gemm';
  /** Reduction length and output channels of the layer's GEMM. */
  k: number;
  outputs: number;
  /** Pairs restart every `segment` values of k (k, or a conv's channels per kernel position). */
  segment: number;
  /** Rows of activations looked at (images x output positions). */
  rows: number;
  /** Pair sums computed, and how many left [-32768, 32767]. */
  pairs: number;
  saturated: number;
  /** Largest |pair sum| seen. */
  maxAbsPairSum: number;
  /** Largest |pair sum| any activation bytes could give with these weights: 255 x (|w0| + |w1|). */
  bound: number;
}

/**
 * Counts the pair sums of uint8 rows `a` [rows, k] against int8 weights `w` [k, outputs] (row
 * major) that leave int16. Pairs are (j, j + 1) for even j within each `segment` of k (k itself
 * for a flat GEMM; the channel count for a conv read per kernel position); an odd tail has no pair.
 */
export function pairSaturation(
  a: Uint8Array,
  rows: number,
  k: number,
  w: Int8Array,
  outputs: number,
  segment = k,
): { pairs: number; saturated: number; maxAbsPairSum: number } {
  if (a.length !== rows * k)
    throw new Error(`pairSaturation: a has ${a.length} bytes, expected ${rows}x${k}`);
  if (w.length !== k * outputs)
    throw new Error(`pairSaturation: w has ${w.length} bytes, expected ${k}x${outputs}`);
  if (!(segment >= 1 && k % segment === 0))
    throw new Error(`pairSaturation: segment ${segment} must divide k ${k}`);
  // Weight pairs as columns: w0[p * outputs + o], w1[...] for the p-th pair of k.
  const starts: number[] = [];
  for (let s = 0; s < k; s += segment) for (let j = 0; j + 1 < segment; j += 2) starts.push(s + j);
  let pairs = 0;
  let saturated = 0;
  let maxAbs = 0;
  for (let r = 0; r < rows; r++) {
    const row = r * k;
    for (const j of starts) {
      const a0 = a[row + j]!;
      const a1 = a[row + j + 1]!;
      if (a0 === 0 && a1 === 0) {
        pairs += outputs;
        continue;
      }
      const w0 = j * outputs;
      const w1 = w0 + outputs;
      for (let o = 0; o < outputs; o++) {
        const s = a0 * w[w0 + o]! + a1 * w[w1 + o]!;
        const m = s < 0 ? -s : s;
        if (m > maxAbs) maxAbs = m;
        if (s > INT16_MAX || s < INT16_MIN) saturated++;
      }
      pairs += outputs;
    }
  }
  return { pairs, saturated, maxAbsPairSum: maxAbs };
}

/** 255 x the largest |w0| + |w1| of any pair: the worst any activation bytes can do. */
export function pairBound(w: Int8Array, k: number, outputs: number, segment = k): number {
  let worst = 0;
  for (let s = 0; s < k; s += segment)
    for (let j = 0; j + 1 < segment; j += 2)
      for (let o = 0; o < outputs; o++) {
        const v = Math.abs(w[(s + j) * outputs + o]!) + Math.abs(w[(s + j + 1) * outputs + o]!);
        if (v > worst) worst = v;
      }
  return 255 * worst;
}

type Init = { dims: number[]; type: number; bytes: Uint8Array };

function initializers(g: O.IGraphProto): Map<string, Init> {
  const m = new Map<string, Init>();
  for (const t of g.initializer ?? []) {
    const raw = t.rawData ?? new Uint8Array(0);
    m.set(t.name!, { dims: (t.dims ?? []).map(Number), type: t.dataType!, bytes: raw });
  }
  return m;
}

const i8 = (t: Init) => new Int8Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
const f32 = (t: Init) => new Float32Array(t.bytes.slice().buffer, 0, t.bytes.byteLength / 4) as Float32Array;

interface Probe {
  node: O.INodeProto;
  op: LayerSaturation['op'];
  /** The tensor to fetch. */
  fetch: string;
  /** uint8 as is, or float to requantize with (scale, zp). */
  requant?: { scale: number; zp: number };
  /** Weights as [k, outputs] int8 and the pair segment. */
  w: Int8Array;
  k: number;
  outputs: number;
  segment: number;
  conv?: { kh: number; kw: number; c: number; pads: number[]; strides: number[]; dilations: number[] };
}

/** [O, C, kh, kw] (OIHW) -> [(kh, kw, c), O]. */
function oihwToKo(w: Int8Array, o: number, c: number, kh: number, kw: number): Int8Array {
  const out = new Int8Array(w.length);
  for (let oo = 0; oo < o; oo++)
    for (let cc = 0; cc < c; cc++)
      for (let i = 0; i < kh; i++)
        for (let j = 0; j < kw; j++)
          out[((i * kw + j) * c + cc) * o + oo] = w[((oo * c + cc) * kh + i) * kw + j]!;
  return out;
}

function attr(n: O.INodeProto, name: string): O.IAttributeProto | undefined {
  return (n.attribute ?? []).find((a) => a.name === name);
}
const ints = (n: O.INodeProto, name: string, dflt: number[]) => attr(n, name)?.ints?.map(Number) ?? dflt;

/** The integer layers of a decoded model and what to fetch for each. */
function probes(model: O.IModelProto): Probe[] {
  const g = model.graph!;
  const inits = initializers(g);
  const producer = new Map<string, O.INodeProto>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  /** An int8 initializer behind a DequantizeLinear feeding `name`, if any. */
  const int8Weight = (name: string): Init | undefined => {
    const dq = producer.get(name);
    if (dq?.opType !== 'DequantizeLinear') return undefined;
    const t = inits.get(dq.input![0]!);
    return t?.type === INT8 ? t : undefined;
  };
  /** The DequantizeLinear (uint8 in) behind a float input, through Transpose/Flatten/Reshape. */
  const actDq = (name: string): { scale: number; zp: number } | undefined => {
    let n = producer.get(name);
    while (n && ['Transpose', 'Flatten', 'Reshape'].includes(n.opType!)) n = producer.get(n.input![0]!);
    if (n?.opType !== 'DequantizeLinear') return undefined;
    const s = inits.get(n.input![1]!);
    const z = inits.get(n.input![2] ?? '');
    if (!s || s.type !== FLOAT || (z && z.type !== UINT8)) return undefined;
    return { scale: f32(s)[0]!, zp: z ? z.bytes[0]! : 0 };
  };
  const out: Probe[] = [];
  for (const n of g.node ?? []) {
    if (n.opType === 'MatMulInteger') {
      const w = inits.get(n.input![1]!);
      if (!w || w.type !== INT8 || w.dims.length !== 2) continue;
      const [k, o] = w.dims as [number, number];
      out.push({ node: n, op: 'MatMulInteger', fetch: n.input![0]!, w: i8(w), k, outputs: o, segment: k });
    } else if (n.opType === 'Conv') {
      const w = int8Weight(n.input![1]!);
      const q = actDq(n.input![0]!);
      if (!w || !q || w.dims.length !== 4) continue;
      if (Number(attr(n, 'group')?.i ?? 1) !== 1) continue; // depthwise: no int16 pairs (header)
      const [o, c, kh, kw] = w.dims as [number, number, number, number];
      out.push({
        node: n,
        op: 'Conv',
        fetch: n.input![0]!,
        requant: q,
        w: oihwToKo(i8(w), o, c, kh, kw),
        k: kh * kw * c,
        outputs: o,
        segment: c,
        conv: {
          kh,
          kw,
          c,
          pads: ints(n, 'pads', [0, 0, 0, 0]),
          strides: ints(n, 'strides', [1, 1]),
          dilations: ints(n, 'dilations', [1, 1]),
        },
      });
    } else if (n.opType === 'Gemm') {
      const w = int8Weight(n.input![1]!);
      const q = actDq(n.input![0]!);
      if (!w || !q || w.dims.length !== 2) continue;
      if (Number(attr(n, 'transB')?.i ?? 0) !== 0) continue; // the exporter writes [in, out]
      const [k, o] = w.dims as [number, number];
      out.push({ node: n, op: 'Gemm', fetch: n.input![0]!, requant: q, w: i8(w), k, outputs: o, segment: k });
    }
  }
  return out;
}

/** uint8 rows [rows, k] of one probe from the fetched tensor. */
function rowsOf(
  p: Probe,
  data: Float32Array | Uint8Array,
  dims: readonly number[],
): { a: Uint8Array; rows: number } {
  const toU8 = (v: number) => {
    if (!p.requant) return v;
    return Math.max(0, Math.min(255, Math.round(v / p.requant.scale) + p.requant.zp));
  };
  if (!p.conv) {
    const a = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) a[i] = toU8(data[i]!);
    if (a.length % p.k !== 0)
      throw new Error(`${p.node.name}: input of ${a.length} values is not rows of ${p.k}`);
    return { a, rows: a.length / p.k };
  }
  // NCHW float input -> im2col rows in (kh, kw, c) order, padding at the zero point.
  const [n, c, h, w] = dims as [number, number, number, number];
  const { kh, kw, pads, strides, dilations } = p.conv;
  const oh = Math.floor((h + pads[0]! + pads[2]! - dilations[0]! * (kh - 1) - 1) / strides[0]!) + 1;
  const ow = Math.floor((w + pads[1]! + pads[3]! - dilations[1]! * (kw - 1) - 1) / strides[1]!) + 1;
  const rows = n * oh * ow;
  const a = new Uint8Array(rows * p.k).fill(p.requant?.zp ?? 0);
  let r = 0;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++, r++)
        for (let i = 0; i < kh; i++) {
          const iy = y * strides[0]! - pads[0]! + i * dilations[0]!;
          if (iy < 0 || iy >= h) continue;
          for (let j = 0; j < kw; j++) {
            const ix = x * strides[1]! - pads[1]! + j * dilations[1]!;
            if (ix < 0 || ix >= w) continue;
            const base = r * p.k + (i * kw + j) * c;
            for (let cc = 0; cc < c; cc++) a[base + cc] = toU8(data[((b * c + cc) * h + iy) * w + ix]!);
          }
        }
  return { a, rows };
}

/**
 * Runs the int8 ONNX model `bytes` in onnxruntime on `input` (NHWC float, `shape` with the batch)
 * and counts, for every integer layer, the pair sums that would saturate off VNNI (see the header).
 */
export async function int8Saturation(
  bytes: Uint8Array,
  input: Float32Array,
  shape: readonly number[],
): Promise<LayerSaturation[]> {
  const model = onnx.ModelProto.decode(bytes);
  const ps = probes(model);
  if (ps.length === 0) return [];
  // Intermediate tensors are fetched by adding them as graph outputs (type only is enough).
  const have = new Set((model.graph!.output ?? []).map((o) => o.name));
  for (const p of ps)
    if (!have.has(p.fetch)) {
      model.graph!.output!.push({
        name: p.fetch,
        type: { tensorType: { elemType: p.op === 'MatMulInteger' ? UINT8 : FLOAT } },
      });
      have.add(p.fetch);
    }
  const ort = await loadOrt('the int8 saturation check');
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  try {
    const res = await session.run(
      { [session.inputNames[0]!]: new ort.Tensor('float32', input, [...shape]) },
      ps.map((p) => p.fetch),
    );
    return ps.map((p) => {
      const t = res[p.fetch]!;
      const { a, rows } = rowsOf(p, t.data as Float32Array | Uint8Array, t.dims);
      const s = pairSaturation(a, rows, p.k, p.w, p.outputs, p.segment);
      return {
        node: p.node.output![0]!,
        op: p.op,
        k: p.k,
        outputs: p.outputs,
        segment: p.segment,
        rows,
        ...s,
        bound: pairBound(p.w, p.k, p.outputs, p.segment),
      };
    });
  } finally {
    await session.release();
  }
}
