import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { nativeCallCounts } from 'retort-kd-native';
import { fusedBatchNorm } from '../../src/models/batchnorm.js';

const args = { axis: -1, momentum: 0.9, epsilon: 1e-5 };

/** A fused and a standard tfjs BN layer with the same weights, applied to the same input. */
function pair(shape: number[]) {
  const fused = fusedBatchNorm(args);
  const plain = tfl.layers.batchNormalization(args);
  const c = shape[shape.length - 1]!;
  fused.build(shape);
  plain.build(shape);
  const w = [tf.randomUniform([c], 0.5, 1.5, 'float32', 1), tf.randomNormal([c], 0, 1, 'float32', 2)];
  const stats = [tf.randomNormal([c], 0, 1, 'float32', 3), tf.randomUniform([c], 0.5, 2, 'float32', 4)];
  fused.setWeights([...w, ...stats]);
  plain.setWeights([...w, ...stats]);
  const x = tf.randomNormal(shape, 1, 2, 'float32', 5);
  return { fused, plain, x, c, n: shape.slice(0, -1).reduce((a, b) => a * b, 1) };
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('FusedBatchNorm layer', () => {
  for (const backend of ['native', 'cpu']) {
    it(`training output, gradients and running mean equal tfjs BatchNormalization (${backend})`, async () => {
      await tf.setBackend(backend);
      const { fused, plain, x } = pair([6, 5, 4, 7]);
      const w = tf.randomNormal([6, 5, 4, 7], 0, 1, 'float32', 9);
      const gf = tf.grads((a: tf.Tensor) =>
        tf.sum(tf.mul(fused.apply(a, { training: true }) as tf.Tensor, w)),
      )([x]);
      const gp = tf.grads((a: tf.Tensor) =>
        tf.sum(tf.mul(plain.apply(a, { training: true }) as tf.Tensor, w)),
      )([x]);
      const yf = fused.apply(x, { training: true }) as tf.Tensor;
      const yp = plain.apply(x, { training: true }) as tf.Tensor;
      assert.ok(maxDiff(yf, yp) < 1e-5, `y differs by ${maxDiff(yf, yp)}`);
      assert.ok(maxDiff(gf[0]!, gp[0]!) < 1e-4, `dx differs by ${maxDiff(gf[0]!, gp[0]!)}`);
      // Running mean: both updated three times from the same batch (two grads + one apply).
      assert.ok(maxDiff(fused.getWeights()[2]!, plain.getWeights()[2]!) < 1e-6);
      await tf.setBackend('native');
    });
  }

  it('updates the running variance with the unbiased batch variance (PyTorch), not the biased one', () => {
    const { fused, plain, x, n } = pair([4, 3, 3, 5]);
    const rv0 = fused.getWeights()[3]!.dataSync().slice();
    fused.apply(x, { training: true });
    plain.apply(x, { training: true });
    const f = fused.getWeights()[3]!.dataSync();
    const p = plain.getWeights()[3]!.dataSync();
    for (let j = 0; j < rv0.length; j++) {
      // tfjs: 0.9 rv0 + 0.1 v;  PyTorch: 0.9 rv0 + 0.1 v n / (n - 1).
      const v = (p[j]! - 0.9 * rv0[j]!) / 0.1;
      const expected = 0.9 * rv0[j]! + (0.1 * v * n) / (n - 1);
      assert.ok(
        Math.abs(f[j]! - expected) < 1e-5 * Math.abs(expected),
        `channel ${j}: ${f[j]} vs ${expected}`,
      );
    }
  });

  it('inference uses the running statistics (same as tfjs) and serializes as BatchNormalization', () => {
    const { fused, plain, x } = pair([2, 3, 3, 4]);
    assert.ok(maxDiff(fused.apply(x) as tf.Tensor, plain.apply(x) as tf.Tensor) < 1e-6);
    assert.equal(fused.getClassName(), 'BatchNormalization');
    assert.deepEqual(
      fused.weights.map((v) => v.originalName.split('/').pop()),
      ['gamma', 'beta', 'moving_mean', 'moving_variance'],
    );
  });

  it('runs the native fused kernel in training, leaving only its output', () => {
    const { fused, x } = pair([2, 3, 3, 4]);
    const before = tf.memory().numTensors;
    const calls = nativeCallCounts.get('RetortBatchNormTrain') ?? 0;
    const y = fused.apply(x, { training: true }) as tf.Tensor;
    assert.equal(nativeCallCounts.get('RetortBatchNormTrain'), calls + 1, 'the native fused kernel ran');
    assert.equal(tf.memory().numTensors, before + 1, 'only the output survives');
    y.dispose();
  });
});
