/**
 * Model-level low-rank factorization: exact at full rank (zoo models and odd conv geometries), the
 * parameter counts and errors the SVD predicts at lower rank, a training step, ONNX export checked in
 * onnxruntime, and the skip rules and errors.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { svd } from '../../src/compress/lowrank.js';
import {
  edgeLayers,
  type FactorizeResult,
  factorizeModel,
  factorNames,
} from '../../src/compress/lowrank-model.js';
import { FusedBatchNorm } from '../../src/models/batchnorm.js';
import { buildModel } from '../../src/models/index.js';
import { randomizeBn } from '../export/onnx-check.js';

const SHAPE: [number, number, number] = [28, 28, 1];
const zoo = (name: string) => buildModel(name, { inputShape: SHAPE, numClasses: 10, seed: 3 });

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function outputs(m: tfl.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

/** ||W - A B||_F / ||W||_F from the weights of the original layer and of its two factors. */
function measuredRelError(orig: tfl.LayersModel, fact: tfl.LayersModel, name: string): number {
  return tf.tidy(() => {
    const w = orig.getLayer(name).getWeights()[0]!;
    const cols = w.shape.at(-1)!;
    const [a, b] = factorNames(name).map((n) => fact.getLayer(n).getWeights()[0]!);
    const r = b!.shape.at(-2)!;
    const ab = tf.matMul(tf.reshape(a!, [-1, r]), tf.reshape(b!, [r, cols]));
    const err = tf.norm(tf.sub(tf.reshape(w, [-1, cols]), ab)).dataSync()[0]!;
    return err / tf.norm(w).dataSync()[0]!;
  });
}

async function onnxDiff(model: tfl.LayersModel, shape: number[], batch = 2): Promise<number> {
  // Imported here so that the other tests of this file run while the exporter is being changed.
  const { exportOnnx } = await import('../../src/export/onnx.js');
  const session = await ort.InferenceSession.create(exportOnnx(model));
  const x = tf.randomNormal([batch, ...shape], 0, 1, 'float32', 7);
  const want = outputs(model, x);
  const res = await session.run({
    input: new ort.Tensor('float32', x.dataSync() as Float32Array, [batch, ...shape]),
  });
  x.dispose();
  return maxAbsDiff(res['output']!.data as Float32Array, want);
}

describe('low-rank factorization of models: full rank is exact', () => {
  for (const [name, count] of [
    ['resnet8', 10],
    ['lightnn', 4],
  ] as const) {
    it(`${name}: every Conv2D/Dense becomes a pair and the outputs agree within 1e-4`, async () => {
      await tf.setBackend('native');
      const m = zoo(name);
      randomizeBn(m);
      const { model: f, layers, skipped } = factorizeModel(m, { rank: { energy: 1 }, minSaving: -Infinity });
      assert.equal(layers.length, count);
      assert.deepEqual(skipped, []);
      for (const l of layers) {
        assert.equal(l.rank, l.maxRank, l.layer);
        assert.ok(l.relError < 1e-5, `${l.layer}: relative error ${l.relError}`);
        const [a, b] = factorNames(l.layer).map((n) => f.getLayer(n));
        assert.equal(a!.getClassName(), l.kind);
        assert.equal(b!.getClassName(), l.kind);
        assert.ok(!f.layers.some((x) => x.name === l.layer), `${l.layer} is still there`);
      }
      // The bias and the activation moved to the second factor.
      const orig = m.getLayer(layers[0]!.layer).getConfig();
      const [ca, cb] = factorNames(layers[0]!.layer).map((n) => f.getLayer(n).getConfig());
      assert.equal(ca!['useBias'], false);
      assert.equal(ca!['activation'], 'linear');
      assert.equal(cb!['useBias'], orig['useBias']);
      assert.equal(cb!['activation'], orig['activation']);
      assert.equal(
        f.countParams(),
        m.countParams() + layers.reduce((s, l) => s + l.paramsAfter - l.paramsBefore, 0),
      );
      if (name === 'resnet8') assert.ok(f.getLayer('bn1') instanceof FusedBatchNorm, 'fused BN kept');
      const x = tf.randomNormal([4, ...SHAPE], 0, 1, 'float32', 5);
      const d = maxAbsDiff(outputs(f, x), outputs(m, x));
      assert.ok(d <= 1e-4, `max abs difference ${d}`);
    });
  }

  it('strides, same/valid padding, dilation and non-square kernels; bias-free convs; exact and exportable', async () => {
    await tf.setBackend('native');
    const x = tfl.input({ shape: [11, 13, 3], name: 'input' });
    const init = (seed: number) => tfl.initializers.randomNormal({ seed, stddev: 0.3 });
    const conv = (name: string, args: Partial<Parameters<typeof tfl.layers.conv2d>[0]>, seed: number) =>
      tfl.layers.conv2d({
        name,
        filters: 6,
        kernelSize: 3,
        kernelInitializer: init(seed),
        biasInitializer: init(seed + 100),
        ...args,
      });
    let h = conv('c1', { kernelSize: [3, 5], strides: 2, padding: 'same', activation: 'relu' }, 1).apply(x);
    h = conv('c2', { dilationRate: 2, padding: 'valid', useBias: false }, 2).apply(h);
    h = conv('c3', { kernelSize: 2, strides: [1, 2], padding: 'same', activation: 'tanh' }, 3).apply(h);
    h = tfl.layers.flatten({ name: 'flat' }).apply(h);
    const y = tfl.layers
      .dense({ name: 'fc', units: 5, kernelInitializer: init(4) })
      .apply(h) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: x, outputs: y });
    const { model: f, layers } = factorizeModel(m, { rank: { energy: 1 }, minSaving: -Infinity });
    assert.deepEqual(
      layers.map((l) => l.layer),
      ['c1', 'c2', 'c3', 'fc'],
    );
    const a = f.getLayer('c1_lr_a').getConfig();
    assert.deepEqual([a['kernelSize'], a['strides'], a['padding']], [[3, 5], [2, 2], 'same']);
    assert.deepEqual(f.getLayer('c2_lr_a').getConfig()['dilationRate'], [2, 2]);
    assert.equal(f.getLayer('c2_lr_b').getWeights().length, 1, 'no bias where the conv had none');
    const b = f.getLayer('c1_lr_b').getConfig();
    assert.deepEqual(
      [b['kernelSize'], b['strides'], b['padding'], b['dilationRate']],
      [[1, 1], [1, 1], 'valid', [1, 1]],
    );
    const inp = tf.randomNormal([3, 11, 13, 3], 0, 1, 'float32', 9);
    assert.ok(maxAbsDiff(outputs(f, inp), outputs(m, inp)) <= 1e-4);
    const e = await onnxDiff(f, [11, 13, 3]);
    assert.ok(e <= 1e-4, `onnxruntime vs tfjs: ${e}`);
  });
});

describe('low-rank factorization of models: lower rank', () => {
  it('resnet8 at sizeFraction 0.5: the ranks, parameter counts and errors the SVD predicts', async () => {
    await tf.setBackend('native');
    const m = zoo('resnet8');
    const res: FactorizeResult = factorizeModel(m, { rank: { sizeFraction: 0.5 } });
    // The size rule keeps about half of every kernel, so no layer falls under the 10% saving rule.
    assert.deepEqual(res.skipped, []);
    let saved = 0;
    for (const layer of m.layers.filter((l) => ['Conv2D', 'Dense'].includes(l.getClassName()))) {
      const w = layer.getWeights()[0]!;
      const cols = w.shape.at(-1)!;
      const rows = w.size / cols;
      const r = Math.floor((0.5 * rows * cols) / (rows + cols));
      const bias = layer.getWeights()[1]?.size ?? 0;
      const after = r * (rows + cols) + bias;
      const before = rows * cols + bias;
      const got = res.layers.find((l) => l.layer === layer.name);
      assert.ok(got, `${layer.name} factorized`);
      assert.deepEqual(
        [got.rank, got.maxRank, got.paramsBefore, got.paramsAfter],
        [r, Math.min(rows, cols), before, after],
        layer.name,
      );
      saved += before - after;
      // The reported error is the dropped singular energy, and it is what the factors really miss.
      const d = svd(w.dataSync(), rows, cols);
      const dropped = Math.sqrt(d.s.slice(r).reduce((s, x) => s + x * x, 0));
      const norm = tf.norm(w).dataSync()[0]!;
      assert.ok(
        Math.abs(got.relError - dropped / norm) < 1e-6,
        `${layer.name}: ${got.relError} vs ${dropped / norm}`,
      );
      const measured = measuredRelError(m, res.model, layer.name);
      assert.ok(
        Math.abs(measured - got.relError) < 1e-4,
        `${layer.name}: measured ${measured} vs ${got.relError}`,
      );
      assert.ok(got.relError > 0.05, `${layer.name}: a random kernel loses energy at half size`);
    }
    assert.equal(res.layers.length, 10);
    assert.equal(res.model.countParams(), m.countParams() - saved);
  });

  it('lightnn at energy 0.8 trains a step and runs in onnxruntime within 1e-4 of tfjs', async () => {
    await tf.setBackend('native');
    const m = zoo('lightnn');
    const { model: f, layers } = factorizeModel(m, { rank: { energy: 0.8 } });
    assert.ok(
      layers.some((l) => l.layer === 'classifier.fc1' && l.rank < l.maxRank),
      'fc1 factorized below full rank',
    );
    assert.ok(f.countParams() < m.countParams());
    const x = tf.randomNormal([8, ...SHAPE], 0, 1, 'float32', 11);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
    const loss = () =>
      tf.losses.softmaxCrossEntropy(y, f.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
    const before = f.trainableWeights.map((w) => w.read().dataSync().slice());
    const l0 = loss().dataSync()[0]!;
    tf.train.sgd(0.05).minimize(
      loss,
      false,
      f.trainableWeights.map((w) => w.read() as tf.Variable),
    );
    const l1 = loss().dataSync()[0]!;
    assert.ok(Number.isFinite(l1) && l1 < l0, `loss ${l0} -> ${l1}`);
    f.trainableWeights.forEach((w, i) => {
      assert.ok(maxAbsDiff(w.read().dataSync(), before[i]!) > 0, `${w.name} did not change`);
    });
    const e = await onnxDiff(f, SHAPE);
    assert.ok(e <= 1e-4, `onnxruntime vs tfjs: ${e}`);
  });

  it('resnet8 at sizeFraction 0.4 (BN with statistics) exports to ONNX within 1e-4', async () => {
    await tf.setBackend('native');
    const m = zoo('resnet8');
    randomizeBn(m);
    const { model: f, layers } = factorizeModel(m, { rank: { sizeFraction: 0.4 }, skip: edgeLayers(m) });
    assert.equal(layers.length, 8);
    assert.ok(layers.every((l) => l.rank < l.maxRank));
    const e = await onnxDiff(f, SHAPE);
    assert.ok(e <= 1e-4, `onnxruntime vs tfjs: ${e}`);
  });
});

describe('low-rank factorization of models: options and errors', () => {
  it('skip, perLayer ranks, the default saving rule; the input model is untouched', async () => {
    await tf.setBackend('native');
    const m = zoo('resnet8');
    assert.deepEqual(edgeLayers(m), ['conv1', 'fc']);
    const w0 = m.getLayer('layer3.0.conv2').getWeights()[0]!.dataSync().slice();
    const res = factorizeModel(m, {
      rank: { energy: 1 },
      perLayer: { 'layer3.0.conv2': { rank: 8 }, 'layer2.0.conv2': { sizeFraction: 0.25 } },
      skip: ['conv1'],
    });
    // Full rank shrinks nothing, so only the two layers with their own rules are factorized.
    assert.deepEqual(
      res.layers.map((l) => [l.layer, l.rank]),
      [
        ['layer2.0.conv2', 7], // floor(0.25 * 288 * 32 / (288 + 32))
        ['layer3.0.conv2', 8],
      ],
    );
    assert.deepEqual(res.skipped[0], { layer: 'conv1', reason: 'named in skip' });
    assert.match(
      res.skipped.find((s) => s.layer === 'layer1.0.conv1')!.reason,
      /^rank 16 of 16: 2560 parameters instead of 2304 \(saving -11\.1% < minSaving 10\.0%\)$/,
    );
    assert.deepEqual(Array.from(m.getLayer('layer3.0.conv2').getWeights()[0]!.dataSync()), Array.from(w0));
    assert.equal(m.layers.length, 33, 'the input model keeps its layers');
  });

  it('errors name the layer and the option', () => {
    const m = zoo('resnet8');
    assert.throws(
      () => factorizeModel(m, { rank: { energy: 1 }, perLayer: { fc: { rank: 11 } } }),
      /lowrank: layer 'fc': rank must be an integer in \[1, 10\], got 11/,
    );
    assert.throws(
      () => factorizeModel(m, { rank: { energy: 1 }, perLayer: { fc: { energy: 2 } } }),
      /lowrank: layer 'fc': energy must be in \(0, 1\], got 2/,
    );
    assert.throws(
      () => factorizeModel(m, { rank: { energy: 1 }, skip: ['bn1'] }),
      /skip names 'bn1', a BatchNormalization, not a Conv2D or Dense/,
    );
    assert.throws(
      () => factorizeModel(m, { rank: { energy: 1 }, perLayer: { nope: { rank: 1 } } }),
      /perLayer names 'nope', which is no layer of model 'resnet8' \(Conv2D\/Dense layers: conv1, /,
    );
    assert.throws(
      () => factorizeModel(m, { rank: { energy: 1 }, minSaving: 1 }),
      /minSaving must be < 1, got 1/,
    );
    const { model: once } = factorizeModel(m, { rank: { rank: 2 }, skip: ['fc'] });
    const x = tfl.input({ shape: [4], name: 'in' });
    const h = tfl.layers.dense({ units: 8, name: 'd' }).apply(x);
    const y = tfl.layers.dense({ units: 8, name: 'd_lr_a' }).apply(h) as tfl.SymbolicTensor;
    assert.throws(
      () => factorizeModel(tfl.model({ inputs: x, outputs: y }), { rank: { rank: 1 } }),
      /cannot factorize 'd': model '.*' has a layer 'd_lr_a'/,
    );
    // Factorizing a factorized model names the new pairs after the old ones.
    const twice = factorizeModel(once, { rank: { rank: 1 }, perLayer: {}, skip: ['fc'] });
    assert.ok(twice.layers.some((l) => l.layer === 'layer3.0.conv2_lr_a'));
    assert.ok(twice.model.getLayer('layer3.0.conv2_lr_a_lr_b'));
  });
});
