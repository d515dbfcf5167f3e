/**
 * Test code (moved from src/compress/quantize/qparams.ts, where only tests used it): a reference
 * affine quantization as ONNX QuantizeLinear/DequantizeLinear and PyTorch define it:
 * q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax), x' = (q - zero_point) * scale.
 * int8 [-128, 127] or uint8 [0, 255]; symmetric (zero point 0 for int8, 128 for uint8; the range
 * [-max|x|, max|x|]) or asymmetric (the observed [min, max], widened to contain 0 so that zero, the
 * padding value, is exactly representable); per tensor or per channel (one scale per slice of an
 * axis, e.g. a conv kernel's output channels).
 */
import { type QDType, QRANGE } from '../../src/compress/quantize/qparams.js';

export interface QuantParams {
  dtype: QDType;
  /** One entry per tensor, or per channel along `axis`. */
  scale: Float32Array;
  zeroPoint: Int32Array;
  /** Channel axis for per-channel parameters; undefined for per-tensor. */
  axis?: number | undefined;
}

/** Round half to even, as ONNX and PyTorch's quantize do. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Scale and zero point for the range [lo, hi]. */
export function chooseParams(
  lo: number,
  hi: number,
  dtype: QDType,
  symmetric: boolean,
): { scale: number; zeroPoint: number } {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || lo > hi)
    throw new Error(`quantize: invalid range [${lo}, ${hi}]`);
  const [qmin, qmax] = QRANGE[dtype];
  if (symmetric) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    const scale = m > 0 ? m / ((qmax - qmin) / 2) : 1;
    return { scale, zeroPoint: dtype === 'int8' ? 0 : 128 };
  }
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const scale = b > a ? (b - a) / (qmax - qmin) : 1;
  const zeroPoint = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - a / scale)));
  return { scale, zeroPoint };
}

/** Parameters from per-tensor or per-channel ranges. */
export function paramsFromRanges(
  lo: ArrayLike<number>,
  hi: ArrayLike<number>,
  dtype: QDType,
  symmetric: boolean,
  axis?: number,
): QuantParams {
  const scale = new Float32Array(lo.length);
  const zeroPoint = new Int32Array(lo.length);
  for (let i = 0; i < lo.length; i++) {
    const p = chooseParams(lo[i]!, hi[i]!, dtype, symmetric);
    scale[i] = p.scale;
    zeroPoint[i] = p.zeroPoint;
  }
  return { dtype, scale, zeroPoint, axis };
}

/** Index of the channel of flat element i for a row-major shape and axis. */
function channelOf(shape: readonly number[], axis: number): (i: number) => number {
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const c = shape[axis]!;
  return (i) => Math.floor(i / inner) % c;
}

/** Quantizes values of `shape` with p (per tensor, or per channel along p.axis). */
export function quantize(x: Float32Array, shape: readonly number[], p: QuantParams): Int32Array {
  const [qmin, qmax] = QRANGE[p.dtype];
  const ch = p.axis === undefined ? () => 0 : channelOf(shape, p.axis);
  if (p.axis !== undefined && shape[p.axis] !== p.scale.length)
    throw new Error(`quantize: ${p.scale.length} scales for axis ${p.axis} of size ${shape[p.axis]}`);
  const q = new Int32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = ch(i);
    q[i] = Math.min(qmax, Math.max(qmin, roundHalfEven(x[i]! / p.scale[c]!) + p.zeroPoint[c]!));
  }
  return q;
}

export function dequantize(q: Int32Array, shape: readonly number[], p: QuantParams): Float32Array {
  const ch = p.axis === undefined ? () => 0 : channelOf(shape, p.axis);
  const x = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const c = ch(i);
    x[i] = (q[i]! - p.zeroPoint[c]!) * p.scale[c]!;
  }
  return x;
}

/** Per-channel [min, max] of x along `axis`. */
export function channelRanges(
  x: Float32Array,
  shape: readonly number[],
  axis: number,
): { lo: Float32Array; hi: Float32Array } {
  const c = shape[axis]!;
  const lo = new Float32Array(c).fill(Number.POSITIVE_INFINITY);
  const hi = new Float32Array(c).fill(Number.NEGATIVE_INFINITY);
  const ch = channelOf(shape, axis);
  for (let i = 0; i < x.length; i++) {
    const k = ch(i);
    if (x[i]! < lo[k]!) lo[k] = x[i]!;
    if (x[i]! > hi[k]!) hi[k] = x[i]!;
  }
  return { lo, hi };
}
