/**
 * IEEE 754 binary16 ("half") encoding of float32 values, for the fp16 exports (tfjs-fp16's weights
 * manifest, onnx-fp16's FLOAT16 initializers). Node 20 has no Math.f16round, so the rounding is
 * written out: round to nearest, ties to even, as a hardware float32 -> float16 conversion (F16C
 * VCVTPS2PH, ARM FCVT) and numpy's astype(float16) do; values below half the smallest subnormal
 * become a signed 0. fp16 keeps 11 significant bits (relative error at most 2^-11, about 4.9e-4)
 * over magnitudes 6.1e-5 .. 65504, and subnormals down to 6.0e-8.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Largest finite float16. */
export const FLOAT16_MAX = 65504;

/** The float16 bit pattern nearest to `v` (ties to even); NaN stays NaN, overflow becomes +-Infinity. */
export function float16Bits(v: number): number {
  f32[0] = v;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or 0): the implicit 1 joins the mantissa, shifted right by 14 - e.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const tie = 1 << (shift - 1);
    if (rest > tie || (rest === tie && (half & 1) === 1)) half++;
    return sign | half;
  }
  // A carry out of the mantissa moves into the exponent, which is the right result (up to Infinity).
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

/**
 * `values` as float16 codes (little-endian when viewed as bytes on the usual hosts: Uint16Array
 * uses the platform's order, little-endian on x86-64 and ARM64, which is what both formats store).
 * A value that is not finite or lies beyond float16's range throws naming `what`, as silently
 * storing Infinity would break the model.
 */
export function toFloat16(values: Float32Array, what: string): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // 65520 and above round to Infinity (ties to even: 65504's mantissa is odd).
    if (!Number.isFinite(v) || Math.abs(v) >= 65520)
      throw new Error(
        `fp16 export: ${what} holds ${v} at index ${i}, outside float16's range (|v| <= ${FLOAT16_MAX})`,
      );
    out[i] = float16Bits(v);
  }
  return out;
}
