/**
 * Fake quantization for quantization-aware training (Jacob et al., CVPR 2018; Bengio et al.'s
 * straight-through estimator, 2013): the forward pass rounds to the quantization grid and back
 * (x' = (clamp(round(x / s) + z) - z) * s), the backward pass lets the gradient through unchanged
 * where x is inside the representable range and stops it outside (PyTorch's FakeQuantize).
 */
import * as tf from '@tensorflow/tfjs-core';
import { type QDType, QRANGE } from './qparams.js';

/** Per-tensor fake quantization with a straight-through gradient. */
export function fakeQuant(x: tf.Tensor, scale: number, zeroPoint: number, dtype: QDType): tf.Tensor {
  const [qmin, qmax] = QRANGE[dtype];
  const lo = (qmin - zeroPoint) * scale;
  const hi = (qmax - zeroPoint) * scale;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    save([input]);
    // tf.round rounds half to even, as ONNX and PyTorch.
    const q = tf.clipByValue(tf.add(tf.round(tf.div(input, scale)), zeroPoint), qmin, qmax);
    return {
      value: tf.mul(tf.sub(q, zeroPoint), scale),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const s = saved[0]!;
        const inside = tf.mul(
          tf.cast(tf.greaterEqual(s, lo), 'float32'),
          tf.cast(tf.lessEqual(s, hi), 'float32'),
        );
        return tf.mul(dy, inside);
      },
    };
  });
  return f(x);
}
