import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { rebuildModel, transferWeights } from '../../src/compress/graph.js';
import { FusedBatchNorm } from '../../src/models/batchnorm.js';
import { buildModel } from '../../src/models/index.js';
import { perturb } from '../models/weights.js';

describe('graph rebuild', () => {
  for (const [name, inputShape, extra] of [
    ['resnet8', [12, 12, 3], {}],
    ['mobilenetv2', [16, 16, 3], { widthMult: 0.25 }],
    ['shufflenetv2', [8, 8, 3], { netSize: 0.5 }],
    ['lightnn', [8, 8, 1], {}],
  ] as const) {
    it(`${name}: an unedited rebuild computes the same outputs and keeps the layer classes`, async () => {
      await tf.setBackend('native');
      const m = buildModel(name, { inputShape, numClasses: 5, seed: 3, ...extra });
      perturb(m); // the copy's seeded initializers cannot reproduce these: only a transfer can
      const copy = rebuildModel(m, () => undefined);
      transferWeights(m, copy);
      assert.deepEqual(
        copy.layers.map((l) => [l.name, l.constructor.name]),
        m.layers.map((l) => [l.name, l.constructor.name]),
      );
      const x = tf.randomNormal([2, ...inputShape], 0, 1, 'float32', 1);
      const a = (m.predict(x) as tf.Tensor).dataSync();
      const b = (copy.predict(x) as tf.Tensor).dataSync();
      assert.deepEqual(Array.from(b), Array.from(a));
      if (name === 'resnet8') assert.ok(copy.getLayer('bn1') instanceof FusedBatchNorm, 'fused BN kept');
    });
  }
});
