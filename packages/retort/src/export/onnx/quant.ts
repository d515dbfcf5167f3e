/**
 * Int8 QDQ pieces of the ONNX export (opset 13): calibration of activation ranges, and the
 * QuantizeLinear/DequantizeLinear nodes and quantized initializers the exporter places.
 *
 * Activations: uint8 asymmetric per tensor, zero point chosen so that 0.0 is exact (zero padding
 * and ReLU stay exact). Weights: int8 symmetric ([-qmax, qmax], zero point 0; qmax 63 for the
 * portable target, 127 for vnni/arm64, see target.ts), per output channel (default) or one scale
 * per tensor, from compress/quantize/qparams.ts quantizeInt8. Biases: int32 with scale = input
 * scale x weight scale (per channel or scalar like the weights), which is what onnxruntime's
 * QLinearConv/QGemm fusions read.
 * Equal activation parameters share their initializers, so that DQ -> Flatten/MaxPool -> Q pairs
 * that onnxruntime drops (it requires equal Q and DQ parameters) are recognisably equal.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { model as tflModel } from '@tensorflow/tfjs-layers';
import { quantizeInt8 } from '../../compress/quantize/qparams.js';
import { type ActQuant, type GraphBuilder, I8, I32, U8, type Value } from './graph.js';

/** Calibrated ranges for `exportOnnx(model, { quant })` (see calibrateRanges). */
export interface QuantSpec {
  /** [lo, hi] of each layer's output, by layer name. */
  ranges: ReadonlyMap<string, readonly [number, number]>;
  /** [lo, hi] of the model input. */
  input: readonly [number, number];
}

/** Weight quantization granularity: one scale per output channel, or one per tensor. */
export type WeightGranularity = 'per-channel' | 'per-tensor';
export const WEIGHT_GRANULARITIES: readonly WeightGranularity[] = ['per-channel', 'per-tensor'];

/** uint8 parameters of a calibrated range, widened to contain 0. */
export function actQuant(range: readonly [number, number]): ActQuant {
  const lo = Math.min(range[0], 0);
  const hi = Math.max(range[1], 0);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return { scale, zp: Math.min(255, Math.max(0, Math.round(-lo / scale))) };
}

/** Writes the QDQ nodes and quantized initializers into one graph. */
export class Quantizer {
  private readonly params = new Map<string, [string, string]>();

  constructor(
    private readonly g: GraphBuilder,
    readonly weights: WeightGranularity,
    /** Largest |q| of the weights (the target's, target.ts). */
    readonly qmax: number,
  ) {}

  /** Scale and zero-point initializers of `q`, one pair per distinct value. */
  private actParams(q: ActQuant): [string, string] {
    const key = `${q.scale}/${q.zp}`;
    let p = this.params.get(key);
    if (p === undefined) {
      p = [
        this.g.f32(this.g.fresh('act.scale'), Float32Array.of(q.scale), []),
        this.g.bytes(this.g.fresh('act.zp'), U8, Uint8Array.of(q.zp), []),
      ];
      this.params.set(key, p);
    }
    return p;
  }

  /** Q -> DQ of a float value; the result carries `q`. */
  qdq(v: Value, q: ActQuant, base: string): Value {
    const [s, z] = this.actParams(q);
    const qn = this.g.node('QuantizeLinear', [v.name, s, z], this.g.fresh(`${base}.q`));
    return { ...v, name: this.g.node('DequantizeLinear', [qn, s, z], this.g.fresh(`${base}.dq`)), q };
  }

  /**
   * An int8 weight behind a DequantizeLinear. `axis` is the output-channel axis of `dims` (0 for
   * OIHW, 1 for a Gemm's [in, out]); the scales have one entry per channel, or one in all.
   */
  weight(
    base: string,
    data: Float32Array,
    dims: number[],
    axis: number,
  ): { name: string; scales: Float32Array } {
    const perChannel = this.weights === 'per-channel';
    const c = perChannel ? dims[axis]! : 1;
    const { q, scales } = quantizeInt8(data, dims, axis, perChannel, this.qmax);
    const g = this.g;
    const qName = g.bytes(`${base}.q`, I8, q, dims);
    const sDims = perChannel ? [c] : [];
    const sName = g.f32(`${base}.scale`, scales, sDims);
    const zName = g.bytes(`${base}.zp`, I8, new Int8Array(c), sDims);
    const attrs = perChannel ? { axis } : {};
    return { name: g.node('DequantizeLinear', [qName, sName, zName], `${base}.dq`, attrs), scales };
  }

  /** Bias as int32 with scale input scale x weight scale(s); float when the input has no scale. */
  bias(base: string, bias: Float32Array, inScale: number | undefined, wScales: Float32Array): string {
    const g = this.g;
    if (inScale === undefined) return g.f32(base, bias, [bias.length]);
    const perChannel = this.weights === 'per-channel';
    const s = Float32Array.from(wScales, (w) => w * inScale);
    const q = Int32Array.from(bias, (b, i) => Math.round(b / s[perChannel ? i : 0]!));
    const qName = g.bytes(`${base}.q`, I32, q, [bias.length]);
    const sDims = perChannel ? [s.length] : [];
    const sName = g.f32(`${base}.scale`, s, sDims);
    const zName = g.bytes(`${base}.zp`, I32, new Int32Array(s.length), sDims);
    return g.node('DequantizeLinear', [qName, sName, zName], `${base}.dq`, perChannel ? { axis: 0 } : {});
  }
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
