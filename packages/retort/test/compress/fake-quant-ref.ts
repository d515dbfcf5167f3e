/**
 * Test code (moved from src/compress/quantize/fake-quant.ts, where only tests used it): fake
 * quantization with the straight-through estimator written with tf.round and clipByValue, with
 * scale and zero point as tensors, per tensor or per channel; the reference of
 * src/compress/quantize/fake-quant.ts fakeQuantAffine. Forward x' = (clamp(round(x / s) + z, qmin,
 * qmax) - z) * s; backward: the gradient passes unchanged inside [(qmin - z) s, (qmax - z) s] and
 * stops outside; scale and zero point get none.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type QDType, QRANGE } from '../../src/compress/quantize/qparams.js';
import type { QuantParams } from './qparams-ref.js';

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
