import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { deepNN, lightNN } from '../../src/models/tutorial.js';

/** Conv2d / Linear parameter count as PyTorch counts it (weight + bias). */
const conv = (cin: number, cout: number, k = 3): number => cin * cout * k * k + cout;
const linear = (fin: number, fout: number): number => fin * fout + fout;

// `sum(p.numel() for p in Model().parameters())` with bench/torch_engine.py's DeepNN and LightNN
// (PyTorch 1.13) printed: deepnn 1186986, lightnn 267738.
const DEEP_PARAMS =
  conv(3, 128) + conv(128, 64) + conv(64, 64) + conv(64, 32) + linear(32 * 8 * 8, 512) + linear(512, 10);
const LIGHT_PARAMS = conv(3, 16) + conv(16, 16) + linear(16 * 8 * 8, 256) + linear(256, 10);

function weightsOf(model: tfl.LayersModel, layer: string): tf.Tensor[] {
  return model.getLayer(layer).getWeights();
}

for (const backend of ['cpu', 'native']) {
  describe(`tutorial models on ${backend}`, () => {
    it('parameter counts equal PyTorch', async () => {
      await tf.setBackend(backend);
      assert.equal(DEEP_PARAMS, 1_186_986);
      assert.equal(LIGHT_PARAMS, 267_738);
      const d = deepNN();
      const l = lightNN();
      assert.equal(d.countParams(), DEEP_PARAMS);
      assert.equal(l.countParams(), LIGHT_PARAMS);
      d.dispose();
      l.dispose();
    });

    it('layer names are stable', async () => {
      await tf.setBackend(backend);
      const d = deepNN();
      const l = lightNN();
      assert.deepEqual(
        d.layers.map((x) => x.name),
        [
          'input',
          'features.conv1',
          'features.conv2',
          'features.pool1',
          'features.conv3',
          'features.conv4',
          'features.pool2',
          'flatten',
          'classifier.fc1',
          'classifier.dropout',
          'classifier.fc2',
        ],
      );
      assert.deepEqual(
        l.layers.map((x) => x.name),
        [
          'input',
          'features.conv1',
          'features.pool1',
          'features.conv2',
          'features.pool2',
          'flatten',
          'classifier.fc1',
          'classifier.dropout',
          'classifier.fc2',
        ],
      );
      d.dispose();
      l.dispose();
    });

    it('output shape is [N, numClasses]; other input sizes and class counts work', async () => {
      await tf.setBackend(backend);
      for (const make of [deepNN, lightNN]) {
        const m = make();
        const y = tf.tidy(() => m.predict(tf.randomNormal([2, 32, 32, 3])) as tf.Tensor);
        assert.deepEqual(y.shape, [2, 10]);
        y.dispose();
        m.dispose();
        const g = make({ inputShape: [28, 28, 1], numClasses: 7 });
        const z = tf.tidy(() => g.predict(tf.randomNormal([3, 28, 28, 1])) as tf.Tensor);
        assert.deepEqual(z.shape, [3, 7]);
        z.dispose();
        g.dispose();
      }
    });

    it('initialisation is PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases', async () => {
      await tf.setBackend(backend);
      const m = deepNN({ seed: 1 });
      for (const [layer, fanIn] of [
        ['features.conv1', 27],
        ['features.conv2', 128 * 9],
        ['classifier.fc1', 2048],
        ['classifier.fc2', 512],
      ] as const) {
        const bound = 1 / Math.sqrt(fanIn);
        for (const w of weightsOf(m, layer)) {
          const v = w.dataSync();
          let lo = Number.POSITIVE_INFINITY;
          let hi = Number.NEGATIVE_INFINITY;
          for (const x of v) {
            lo = Math.min(lo, x);
            hi = Math.max(hi, x);
          }
          assert.ok(lo >= -bound && hi <= bound, `${layer} ${w.shape}: [${lo}, ${hi}] outside ±${bound}`);
          // Large enough tensors should fill most of the interval (not a zeros or tiny-range init).
          if (v.length >= 512) assert.ok(hi - lo > 1.8 * bound, `${layer} ${w.shape}: range ${hi - lo}`);
        }
      }
      m.dispose();
    });

    it('seeded models are reproducible', async () => {
      await tf.setBackend(backend);
      const a = lightNN({ seed: 7 });
      const b = lightNN({ seed: 7 });
      const wa = weightsOf(a, 'classifier.fc1')[0]!.dataSync();
      const wb = weightsOf(b, 'classifier.fc1')[0]!.dataSync();
      assert.deepEqual(wa, wb);
      a.dispose();
      b.dispose();
    });

    it('apply({training: true}) enables dropout, predict does not; Adam steps lower the loss', async () => {
      await tf.setBackend(backend);
      // Small images keep the JS cpu backend fast; the layer stack is the same.
      const m = lightNN({ seed: 3, inputShape: [8, 8, 3] });
      const x = tf.randomNormal([10, 8, 8, 3], 0, 1, 'float32', 5);
      const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'int32'), 10);
      const diff = (a: tf.Tensor, b: tf.Tensor): number =>
        tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
      const [p1, p2, t1, t2] = tf.tidy(() => [
        m.predict(x) as tf.Tensor,
        m.predict(x) as tf.Tensor,
        m.apply(x, { training: true }) as tf.Tensor,
        m.apply(x, { training: true }) as tf.Tensor,
      ]) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      assert.equal(diff(p1, p2), 0);
      assert.ok(diff(t1, t2) > 0, 'two training-mode passes should differ (dropout)');
      tf.dispose([p1, p2, t1, t2]);

      const opt = tf.train.adam(1e-3);
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const losses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const loss = opt.minimize(
          () => tf.losses.softmaxCrossEntropy(labels, m.apply(x, { training: true }) as tf.Tensor),
          true,
          vars,
        )!;
        losses.push(loss.dataSync()[0]!);
        loss.dispose();
      }
      assert.ok(
        losses[19]! < 0.85 * losses[0]!,
        `loss should drop on a memorised batch: ${losses.join(', ')}`,
      );
      opt.dispose();
      tf.dispose([x, labels]);
      m.dispose();
    });
  });
}
