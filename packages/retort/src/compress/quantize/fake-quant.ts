/**
 * Fake quantization for quantization-aware training (Jacob et al., CVPR 2018) with the
 * straight-through estimator (Bengio, Leonard & Courville, arXiv 2013): the forward pass rounds to
 * the quantization grid and back, x' = (clamp(round(x / s) + z, qmin, qmax) - z) * s, rounding half
 * to even as ONNX QuantizeLinear and PyTorch do; the backward pass lets the gradient through
 * unchanged where x lies inside the representable range [(qmin - z) s, (qmax - z) s] and stops it
 * outside (PyTorch's FakeQuantize does the same). Scale and zero point get no gradient (they come
 * from observers, not from learning). Activation QAT (act-qat.ts) quantizes with it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type QDType, QRANGE } from './qparams.js';

// 1.5 * 2^23: adding it to a float32 |v| < 2^22 leaves no fraction bits, so (v + M) - M is v
// rounded half to even (IEEE round to nearest), as tf.round but with two Add/Sub kernels.
const ROUNDER = 12582912;

/**
 * Fake quantization (see the header) with one scale and zero point given as numbers (per-tensor
 * activations; the gradient mask is the inclusive [(qmin - z) s, (qmax - z) s] in float32), written
 * with element-wise kernels the native backend runs (div, maximum, minimum, add, sub, mul, step)
 * instead of Round, ClipByValue, comparisons and casts, which run in JS (the tests' reference,
 * fakeQuantTensor, is written with those and gives the same values): about 100x faster on
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
