/**
 * BatchNorms put back after the convs of an imported model whose export folded them
 * (compress/restore-bn.ts): the model's function is unchanged in inference, and in training mode
 * on the calibration batch itself (whose statistics the layers were set from) as well.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { consumersOf } from '../../src/compress/graph.js';
import { restoreBatchNorms } from '../../src/compress/restore-bn.js';
import { importOnnx } from '../../src/models/onnx-import.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixture = (...p: string[]) => readFileSync(join(here, '..', 'fixtures', ...p));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

describe('restoreBatchNorms', () => {
  for (const backend of ['cpu', 'native'])
    it(`PyTorch ResNet-20 with folded BNs (${backend}): a BN after each of its 21 convs, same outputs`, async () => {
      await tf.setBackend(backend);
      const { model } = importOnnx(fixture('onnx-teacher', 'resnet20-fmnist.onnx'), { layout: 'nchw' });
      const x = tf.randomNormal([16, 28, 28, 1], 0, 1, 'float32', 4);
      const r = restoreBatchNorms(model, [x]);
      assert.equal(r.restored.length, 21);
      for (const name of r.restored) {
        const next = consumersOf(r.model.getLayer(name));
        assert.deepEqual(
          next.map((l) => [l.name, l.getClassName()]),
          [[`${name}.bn`, 'BatchNormalization']],
        );
      }
      const want = model.predict(x) as tf.Tensor;
      const scale = tf.max(tf.abs(want)).dataSync()[0]!;
      const y = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 5);
      const [inferOld, inferNew] = [model.predict(y) as tf.Tensor, r.model.predict(y) as tf.Tensor];
      assert.ok(maxAbsDiff(inferOld, inferNew) <= 1e-4 * Math.max(1, scale), 'inference changed');
      // Training mode on the calibration batch: batch statistics = the restored ones.
      const train = r.model.apply(x, { training: true }) as tf.Tensor;
      const d = maxAbsDiff(train, want);
      assert.ok(d <= 1e-3 * Math.max(1, scale), `training-mode outputs differ by ${d}`);
      // ... and its parameters are trainable: the scale of each channel is its own again.
      assert.equal(r.model.trainableWeights.length, model.trainableWeights.length + 2 * 21);
      tf.dispose([x, y, want, inferOld, inferNew, train]);
    });

  it('leaves convs that have their BN (MobileNetV2 exported with BNs kept) as they are', async () => {
    await tf.setBackend('native');
    const { model } = importOnnx(fixture('onnx-import', 'mobilenetv2.onnx'), { layout: 'nchw' });
    const r = restoreBatchNorms(model, [tf.randomNormal([4, 28, 28, 1])]);
    assert.deepEqual(r.restored, []);
    assert.equal(r.model, model);
  });
});
