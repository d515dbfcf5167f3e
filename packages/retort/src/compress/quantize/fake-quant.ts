/**
 * Fake quantization for quantization-aware training (Jacob et al., CVPR 2018) with the
 * straight-through estimator (Bengio, Leonard & Courville, arXiv 2013): the forward pass rounds to
 * the quantization grid and back, x' = (clamp(round(x / s) + z, qmin, qmax) - z) * s; the backward
 * pass lets the gradient through unchanged where x lies inside the representable range
 * [(qmin - z) s, (qmax - z) s] and stops it outside (PyTorch's FakeQuantize does the same). Scale
 * and zero point get no gradient (they come from observers, not from learning).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type QDType, QRANGE, type QuantParams } from './qparams.js';

/**
 * Fake quantization with scale and zero point as tensors that broadcast against x (scalars for
 * per-tensor, e.g. [C] for per-channel over the last axis). The zero point must hold integers.
 */
export function fakeQuantTensor(
  x: tf.Tensor,
  scale: tf.Tensor,
  zeroPoint: tf.Tensor,
  dtype: QDType,
): tf.Tensor {
  const [qmin, qmax] = QRANGE[dtype];
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, s, z] = args as [tf.Tensor, tf.Tensor, tf.Tensor];
    const save = args[3] as tf.GradSaveFunc;
    // tf.round rounds half to even, as ONNX QuantizeLinear and PyTorch do.
    const q = tf.clipByValue(tf.add(tf.round(tf.div(input, s)), z), qmin, qmax);
    const lo = tf.mul(tf.sub(qmin, z), s);
    const hi = tf.mul(tf.sub(qmax, z), s);
    const inside = tf.logicalAnd(tf.greaterEqual(input, lo), tf.lessEqual(input, hi));
    save([inside, s, z]);
    return {
      value: tf.mul(tf.sub(q, z), s),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.mul(dy, tf.cast(saved[0]!, 'float32')),
        tf.zerosLike(saved[1]!),
        tf.zerosLike(saved[2]!),
      ],
    };
  });
  return f(x, scale, zeroPoint);
}

/** Fake quantization with per-tensor or per-channel (along p.axis) parameters. */
export function fakeQuant(x: tf.Tensor, p: QuantParams): tf.Tensor {
  return tf.tidy(() => {
    if (p.axis === undefined) {
      if (p.scale.length !== 1)
        throw new Error(`fakeQuant: per-tensor parameters need one scale, got ${p.scale.length}`);
      return fakeQuantTensor(x, tf.scalar(p.scale[0]!), tf.scalar(p.zeroPoint[0]!), p.dtype);
    }
    const axis = p.axis < 0 ? x.rank + p.axis : p.axis;
    if (x.shape[axis] !== p.scale.length)
      throw new Error(`fakeQuant: ${p.scale.length} scales for axis ${p.axis} of shape [${x.shape}]`);
    const shape = x.shape.map((d, i) => (i === axis ? d : 1));
    return fakeQuantTensor(
      x,
      tf.tensor(p.scale, shape),
      tf.tensor(Float32Array.from(p.zeroPoint), shape),
      p.dtype,
    );
  });
}

/**
 * Fake quantization to the range [lo, hi] (scalar tensors; widened to contain 0): asymmetric
 * scale (hi - lo) / (qmax - qmin) and integer zero point, as the int8 export computes them from
 * calibrated ranges, or symmetric around 0. Differentiable in x only.
 */
export function fakeQuantRange(
  x: tf.Tensor,
  lo: tf.Tensor,
  hi: tf.Tensor,
  dtype: QDType,
  symmetric = false,
): tf.Tensor {
  return tf.tidy(() => {
    const [qmin, qmax] = QRANGE[dtype];
    const a = tf.minimum(lo, 0);
    const b = tf.maximum(hi, 0);
    if (symmetric) {
      const m = tf.maximum(tf.abs(a), tf.abs(b));
      const scale = tf.where(tf.greater(m, 0), tf.div(m, (qmax - qmin) / 2), tf.onesLike(m));
      return fakeQuantTensor(x, scale, tf.scalar(dtype === 'int8' ? 0 : 128), dtype);
    }
    const w = tf.sub(b, a);
    const scale = tf.where(tf.greater(w, 0), tf.div(w, qmax - qmin), tf.onesLike(w));
    const zp = tf.clipByValue(tf.round(tf.sub(qmin, tf.div(a, scale))), qmin, qmax);
    return fakeQuantTensor(x, scale, zp, dtype);
  });
}

// 1.5 * 2^23: adding it to a float32 |v| < 2^22 leaves no fraction bits, so (v + M) - M is v
// rounded half to even (IEEE round to nearest), as tf.round but with two Add/Sub kernels.
const ROUNDER = 12582912;

/**
 * fakeQuantTensor with one scale and zero point given as numbers (per-tensor activations): the same
 * values and the same gradient mask (inclusive [(qmin - z) s, (qmax - z) s] in float32), written
 * with element-wise kernels the native backend runs (div, maximum, minimum, add, sub, mul, step)
 * instead of Round, ClipByValue, comparisons and casts, which run in JS: about 100x faster on
 * ResNet-8's activations (a [128, 28, 28, 16] map: 24 ms per round or clip op, 0.3 ms native).
 * The clip comes before the rounding: for integer bounds clip(round(v)) = round(clip(v)), and the
 * clipped value is small enough for the rounding constant.
 */
export function fakeQuantAffine(x: tf.Tensor, scale: number, zeroPoint: number, dtype: QDType): tf.Tensor {
  const [qmin, qmax] = QRANGE[dtype];
  if (!(scale > 0 && Number.isFinite(scale)))
    throw new Error(`fakeQuantAffine: scale must be a positive finite number, got ${scale}`);
  if (!Number.isInteger(zeroPoint) || zeroPoint < qmin || zeroPoint > qmax)
    throw new Error(`fakeQuantAffine: zero point ${zeroPoint} is no ${dtype} integer`);
  const s = Math.fround(scale);
  const lo = Math.fround(s * (qmin - zeroPoint));
  const hi = Math.fround(s * (qmax - zeroPoint));
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([input]);
    const v = tf.minimum(tf.maximum(tf.div(input, s), qmin - zeroPoint), qmax - zeroPoint);
    return {
      value: tf.mul(tf.sub(tf.add(v, ROUNDER), ROUNDER), s),
      // x < lo <=> lo - x > 0 (exact in IEEE subtraction); the two never hold together.
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const xs = saved[0]!;
        const out = tf.sub(tf.sub(1, tf.step(tf.sub(lo, xs))), tf.step(tf.sub(xs, hi)));
        return [tf.mul(dy, out)];
      },
    };
  });
  return f(x);
}
