/**
 * Model-level k-means weight sharing: per-layer codebooks written into the kernels, the centroid
 * updates of fine-tuning checked against Han et al.'s gradient (plain SGD: C_k - lr * sum of the
 * cluster's gradients), and a few trainer epochs that keep <= k values per kernel while the
 * centroids, biases and BN parameters move.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { decode } from '../../src/compress/cluster.js';
import { clusterModel, type LayerClustering, withClusterFinetune } from '../../src/compress/cluster-model.js';
import { MaskSet } from '../../src/compress/prune/magnitude.js';
import type { ImageDataset } from '../../src/data/dataset.js';
import { BatchLoader } from '../../src/data/loader.js';
import { buildModel } from '../../src/models/index.js';
import { SGD } from '../../src/train/optimizers.js';
import { fit, type StepInput, type TrainTask } from '../../src/train/trainer.js';
import { Rng } from '../../src/util/rng.js';

const resnet8 = () => buildModel('resnet8', { inputShape: [12, 12, 1], numClasses: 4, seed: 2 });

const KERNELS = [
  'conv1',
  'layer1.0.conv1',
  'layer1.0.conv2',
  'layer2.0.conv1',
  'layer2.0.conv2',
  'layer2.0.downsample.0',
  'layer3.0.conv1',
  'layer3.0.conv2',
  'layer3.0.downsample.0',
  'fc',
];

const kernelOf = (m: tfl.LayersModel, name: string) => m.getLayer(name).getWeights()[0]!;
const distinct = (t: tf.Tensor) => new Set(t.dataSync()).size;

function ceTask(model: tfl.LayersModel, classes: number): TrainTask {
  return {
    model,
    loss: ({ x, y }) => {
      const logits = model.apply(x, { training: true }) as tf.Tensor;
      const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, classes), logits) as tf.Scalar;
      return { total: ce, terms: { ce }, logits };
    },
  };
}

/** Random 12x12x1 images with random labels: enough for gradients to flow. */
function noise(n: number, seed: number): ImageDataset {
  const r = new Rng(seed);
  const images = Uint8Array.from({ length: n * 144 }, () => r.int(256));
  const labels = Uint8Array.from({ length: n }, () => r.int(4));
  return { name: 'noise', images, labels, count: n, height: 12, width: 12, channels: 1, numClasses: 4 };
}

describe('k-means clustering of a model', () => {
  it('resnet8: one codebook per kernel, <= k values each, the decoded codebook written in place', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    const bn0 = m.getLayer('bn1').getWeights()[0]!.dataSync().slice();
    const fcBias = m.getLayer('fc').getWeights()[1]!.dataSync().slice();
    const before = Object.fromEntries(KERNELS.map((n) => [n, kernelOf(m, n).dataSync().slice()]));
    const cs = clusterModel(m, { clusters: 8, seed: 1, skip: ['layer3.0.conv2'] });
    assert.deepEqual(
      cs.map((c) => c.layer),
      KERNELS.filter((n) => n !== 'layer3.0.conv2'),
    );
    for (const c of cs) {
      const k = kernelOf(m, c.layer);
      assert.deepEqual(c.shape, k.shape);
      assert.equal(c.clustering.centroids.length, 8);
      assert.ok(distinct(k) <= 8, `${c.layer}: ${distinct(k)} values`);
      assert.deepEqual(Array.from(k.dataSync()), Array.from(decode(c.clustering)), c.layer);
      // Each weight went to its nearest centroid.
      const w0 = before[c.layer]!;
      for (let i = 0; i < w0.length; i += 7) {
        const mine = Math.abs(w0[i]! - c.clustering.centroids[c.clustering.indices[i]!]!);
        for (const v of c.clustering.centroids) assert.ok(mine <= Math.abs(w0[i]! - v) + 1e-7);
      }
    }
    assert.deepEqual(
      kernelOf(m, 'layer3.0.conv2').dataSync(),
      before['layer3.0.conv2'],
      'skipped stays float',
    );
    assert.deepEqual(m.getLayer('bn1').getWeights()[0]!.dataSync(), bn0, 'BN untouched');
    assert.deepEqual(m.getLayer('fc').getWeights()[1]!.dataSync(), fcBias, 'bias untouched');
  });

  it('a kernel with no more weights than clusters stays float, without a codebook', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    const stem = kernelOf(m, 'conv1').dataSync().slice();
    const cs = clusterModel(m, { clusters: 200 });
    assert.ok(!cs.some((c) => c.layer === 'conv1'), 'the 144-weight stem gets no codebook');
    assert.deepEqual(kernelOf(m, 'conv1').dataSync(), stem, 'and keeps its weights');
    const l2 = cs.find((c) => c.layer === 'layer2.0.conv1');
    assert.ok(l2, 'larger kernels are clustered');
    assert.ok(new Set(kernelOf(m, 'layer2.0.conv1').dataSync()).size <= 200);
  });

  it('errors name the layer', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    assert.throws(
      () => clusterModel(m, { clusters: 100000 }),
      /model 'resnet8' has no Conv2D, DepthwiseConv2D or Dense kernel to cluster into 100000 clusters \(kernels with no more weights than that stay float: conv1 144, /,
    );
    assert.throws(
      () => clusterModel(m, { clusters: 4, skip: ['bn1'] }),
      /skip names 'bn1', which is no Conv2D, DepthwiseConv2D or Dense layer of model 'resnet8'/,
    );
    const cs = clusterModel(m, { clusters: 4, seed: 3 });
    const fc = m.getLayer('fc');
    fc.setWeights([tf.add(fc.getWeights()[0]!, 0.01), fc.getWeights()[1]!]);
    assert.throws(
      () => withClusterFinetune(ceTask(m, 4), m, cs),
      /cluster finetune: layer 'fc': weight 0 is .*: the kernel is not its decoded codebook/,
    );
    const other = buildModel('lightnn', { inputShape: [12, 12, 1], numClasses: 4 });
    assert.throws(
      () => withClusterFinetune(ceTask(other, 4), other, cs),
      /model '.*' has no Conv2D, DepthwiseConv2D or Dense layer 'conv1'/,
    );
  });
});

describe('fine-tuning the centroids', () => {
  // A conv, a depthwise conv and a dense: centroid steps checked against tf.grad of the same loss.
  function small(): tfl.LayersModel {
    const init = (seed: number) => tfl.initializers.randomNormal({ seed, stddev: 0.5 });
    const x = tfl.input({ shape: [5, 5, 2], name: 'input' });
    let h = tfl.layers
      .conv2d({ name: 'c', filters: 4, kernelSize: 3, activation: 'tanh', kernelInitializer: init(1) })
      .apply(x);
    h = tfl.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, depthwiseInitializer: init(2) }).apply(h);
    h = tfl.layers.flatten({ name: 'flat' }).apply(h);
    const y = tfl.layers
      .dense({ name: 'fc', units: 3, kernelInitializer: init(3), biasInitializer: init(4) })
      .apply(h) as tfl.SymbolicTensor;
    return tfl.model({ inputs: x, outputs: y });
  }

  for (const reduce of ['sum', 'mean'] as const) {
    it(`'${reduce}': after an SGD step C_k = C_k - lr * ${reduce} of the cluster's gradients; biases take their own step`, async () => {
      await tf.setBackend('native');
      const m = small();
      const cs = clusterModel(m, { clusters: 5, seed: 2 });
      const x = tf.randomNormal([6, 5, 5, 2], 0, 1, 'float32', 3);
      const target = tf.randomNormal([6, 3], 0, 1, 'float32', 4);
      const mse = () => tf.mean(tf.square(tf.sub(m.apply(x) as tf.Tensor, target))) as tf.Scalar;
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(mse, vars);
      const gradOf = (v: tf.Variable) => grads[v.name]!.dataSync();
      const biasBefore = m.getLayer('fc').getWeights()[1]!.dataSync().slice();
      const biasGrad = gradOf(m.getLayer('fc').getWeights()[1] as tf.Variable);
      const task = withClusterFinetune({ model: m, loss: () => ({ total: mse(), terms: {} }) }, m, cs, {
        reduce,
      });
      const input = {} as StepInput; // the wrapped loss ignores it
      const lr = 0.05;
      task.prepare!(input);
      tf.train.sgd(lr).minimize(() => task.loss(input).total, false, vars);
      task.release!();
      const now = task.clusterings();
      let moved = 0;
      for (const [l, c] of cs.entries()) {
        const g = gradOf(m.getLayer(c.layer).getWeights()[0] as tf.Variable);
        const k = c.clustering.centroids.length;
        const sum = new Float64Array(k);
        const count = new Float64Array(k);
        c.clustering.indices.forEach((j, i) => {
          sum[j]! += g[i]!;
          count[j]! += 1;
        });
        const got = now[l]!.clustering.centroids;
        for (let j = 0; j < k; j++) {
          if (count[j] === 0) continue;
          const step = reduce === 'sum' ? sum[j]! : sum[j]! / count[j]!;
          const want = c.clustering.centroids[j]! - lr * step;
          assert.ok(Math.abs(got[j]! - want) < 1e-5, `${c.layer} centroid ${j}: ${got[j]} vs ${want}`);
          if (Math.abs(got[j]! - c.clustering.centroids[j]!) > 1e-6) moved++;
        }
        const kernel = kernelOf(m, c.layer);
        assert.ok(distinct(kernel) <= k);
        assert.deepEqual(Array.from(kernel.dataSync()), Array.from(decode(now[l]!.clustering)), c.layer);
      }
      assert.ok(moved >= 10, `only ${moved} centroids moved`);
      const bias = m.getLayer('fc').getWeights()[1]!.dataSync();
      for (let i = 0; i < bias.length; i++)
        assert.ok(Math.abs(bias[i]! - (biasBefore[i]! - lr * biasGrad[i]!)) < 1e-6, `bias ${i}`);
      task.dispose();
    });
  }

  it('resnet8 through the trainer (SGD, momentum, weight decay): <= k values per kernel; centroids, biases and BN move', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    const cs: LayerClustering[] = clusterModel(m, { clusters: 4, seed: 5, skip: ['conv1'] });
    const gamma0 = m.getLayer('layer2.0.bn1').getWeights()[0]!.dataSync().slice();
    const bias0 = m.getLayer('fc').getWeights()[1]!.dataSync().slice();
    const conv10 = kernelOf(m, 'conv1').dataSync().slice();
    const task = withClusterFinetune(ceTask(m, 4), m, cs);
    const data = noise(48, 1);
    await fit(task, {
      epochs: 2,
      optimizer: new SGD({ lr: 0.002, momentum: 0.9, weightDecay: 5e-4 }),
      schedule: { kind: 'cosine', lr: 0.002, epochs: 2 },
      train: new BatchLoader(data, { batchSize: 16, shuffle: true, mean: [0.5], std: [0.25], seed: 1 }),
      log: () => {},
    });
    const now = task.clusterings();
    for (const [l, c] of cs.entries()) {
      const k = kernelOf(m, c.layer);
      assert.ok(distinct(k) <= 4, `${c.layer}: ${distinct(k)} distinct values after fine-tuning`);
      assert.deepEqual(Array.from(k.dataSync()), Array.from(decode(now[l]!.clustering)), c.layer);
      const change = Math.max(
        ...Array.from(now[l]!.clustering.centroids, (v, j) => Math.abs(v - c.clustering.centroids[j]!)),
      );
      assert.ok(change > 0, `${c.layer}: centroids did not move`);
      assert.ok(Number.isFinite(change));
    }
    assert.ok(distinct(kernelOf(m, 'conv1')) > 4, 'the skipped conv trains freely');
    assert.notDeepEqual(kernelOf(m, 'conv1').dataSync(), conv10);
    assert.notDeepEqual(m.getLayer('layer2.0.bn1').getWeights()[0]!.dataSync(), gamma0, 'BN gamma trains');
    assert.notDeepEqual(m.getLayer('fc').getWeights()[1]!.dataSync(), bias0, 'the classifier bias trains');
    task.dispose();
  });

  it('keepZeros after pruning: zeros get a frozen centroid 0 and stay zero through fine-tuning', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    MaskSet.prune(m, 0.7, 'global');
    const zerosOf = (t: tf.Tensor) => Array.from(t.dataSync(), (v) => v === 0);
    const pruned = Object.fromEntries(KERNELS.map((n) => [n, zerosOf(kernelOf(m, n))]));
    const cs = clusterModel(m, { clusters: 4, seed: 5, keepZeros: true });
    for (const c of cs) {
      assert.deepEqual(c.frozen, [0], c.layer);
      assert.equal(c.clustering.centroids[0], 0);
      assert.deepEqual(zerosOf(kernelOf(m, c.layer)), pruned[c.layer], `${c.layer}: the same zeros`);
    }
    const task = withClusterFinetune(ceTask(m, 4), m, cs);
    await fit(task, {
      epochs: 2,
      optimizer: new SGD({ lr: 0.002, momentum: 0.9, weightDecay: 5e-4 }),
      schedule: { kind: 'cosine', lr: 0.002, epochs: 2 },
      train: new BatchLoader(noise(48, 2), {
        batchSize: 16,
        shuffle: true,
        mean: [0.5],
        std: [0.25],
        seed: 1,
      }),
      log: () => {},
    });
    const now = task.clusterings();
    for (const [l, c] of cs.entries()) {
      const k = kernelOf(m, c.layer);
      assert.deepEqual(zerosOf(k), pruned[c.layer], `${c.layer}: zeros kept, no mask needed`);
      assert.ok(distinct(k) <= 4, `${c.layer}: ${distinct(k)} values`);
      assert.equal(now[l]!.clustering.centroids[0], 0, `${c.layer}: the frozen centroid stays 0`);
      assert.ok(
        now[l]!.clustering.centroids.some((v, j) => j > 0 && v !== c.clustering.centroids[j]),
        `${c.layer}: the other centroids train`,
      );
    }
    task.dispose();
  });
});
