import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import {
  channelScores,
  keptChannels,
  prunableChains,
  pruneChannels,
} from '../../src/compress/prune/structured.js';
import { buildModel } from '../../src/models/index.js';

describe('structured channel pruning', () => {
  it('finds the inside of every ResNet-8 block (not the channels feeding residual adds)', () => {
    const m = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const chains = prunableChains(m);
    assert.deepEqual(
      chains.map((c) => [c.conv, c.next]),
      [
        ['layer1.0.conv1', 'layer1.0.conv2'],
        ['layer2.0.conv1', 'layer2.0.conv2'],
        ['layer3.0.conv1', 'layer3.0.conv2'],
      ],
    );
  });

  it('50% of the channels: shapes really shrink, parameters drop, the model still runs', async () => {
    await tf.setBackend('native');
    const m = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const { model: small, kept } = await pruneChannels(m, 0.5, 'l1');
    assert.equal(kept['layer3.0.conv1']!.length, 32);
    assert.deepEqual(small.getLayer('layer3.0.conv1').getWeights()[0]!.shape, [3, 3, 32, 32]);
    assert.deepEqual(small.getLayer('layer3.0.conv2').getWeights()[0]!.shape, [3, 3, 32, 64]);
    assert.ok(small.countParams() < m.countParams() * 0.75);
    const y = small.predict(tf.randomNormal([2, 28, 28, 1])) as tf.Tensor;
    assert.deepEqual(y.shape, [2, 10]);
  });

  it('removing channels whose filters are zero leaves the outputs unchanged (exact equivalence)', async () => {
    await tf.setBackend('native');
    const m = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    // Zero half the filters of layer2.0.conv1 and the matching BN beta, so those channels are
    // exactly 0 after BN + ReLU in inference (running mean 0, gamma 1, beta 0).
    const conv = m.getLayer('layer2.0.conv1');
    const [k] = conv.getWeights() as [tf.Tensor];
    const mask = tf.tensor1d(Array.from({ length: 32 }, (_, i) => (i % 2 === 0 ? 1 : 0)));
    conv.setWeights([tf.mul(k, mask)]);
    const x = tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 4);
    const before = (m.predict(x) as tf.Tensor).dataSync();
    const { model: small, kept } = await pruneChannels(m, 0.5, 'l1', ['layer2.0.conv1']);
    assert.deepEqual(
      kept['layer2.0.conv1'],
      Array.from({ length: 16 }, (_, i) => 2 * i),
    );
    const after = (small.predict(x) as tf.Tensor).dataSync();
    for (let i = 0; i < before.length; i++) assert.ok(Math.abs(after[i]! - before[i]!) < 1e-5, `logit ${i}`);
    await assert.rejects(
      pruneChannels(m, 0.5, 'l1', ['layer2.0.conv2']),
      /'layer2\.0\.conv2' does not start a prunable chain/,
    );
  });

  it('BN-scale scores are |gamma|; the kept set prefers large scores, ties by index', () => {
    const m = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const chain = prunableChains(m)[0]!;
    assert.deepEqual(Array.from(channelScores(m, chain, 'bn-scale')), new Array(16).fill(1));
    assert.deepEqual(keptChannels(Float32Array.of(0.1, 3, 2, 3), 0.5), [1, 3]);
    assert.throws(() => keptChannels(Float32Array.of(1), 1), /fraction must be in \[0, 1\)/);
  });
});
