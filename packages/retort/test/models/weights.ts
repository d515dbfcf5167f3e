/** Test helper: weights no initializer would give, so that a dropped or untransferred weight shows. */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

/** Scales every weight by U(0.5, 1.5) and adds U(0, 0.1), seeded (BN variances stay positive). */
export function perturb(model: tfl.LayersModel, seed = 7): void {
  const next = model
    .getWeights()
    .map((w, i) =>
      tf.add(
        tf.mul(w, tf.randomUniform(w.shape, 0.5, 1.5, 'float32', seed + i)),
        tf.randomUniform(w.shape, 0, 0.1, 'float32', seed + 1000 + i),
      ),
    );
  model.setWeights(next);
  tf.dispose(next);
}
