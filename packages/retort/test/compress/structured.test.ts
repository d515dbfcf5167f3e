import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  channelGroups,
  channelScores,
  keptChannels,
  pruneChannels,
  roundKept,
  slimmingPenalty,
  traceGroup,
} from '../../src/compress/prune/structured.js';
import { buildModel } from '../../src/models/index.js';

const resnet8 = (seed = 1) => buildModel('resnet8', { inputShape: [12, 12, 1], numClasses: 10, seed });
const mobilenet = (seed = 1) =>
  buildModel('mobilenetv2', { inputShape: [16, 16, 3], numClasses: 10, seed, widthMult: 0.25 });
const lightnn = (seed = 1) => buildModel('lightnn', { inputShape: [8, 8, 1], numClasses: 10, seed });

/** Random BN statistics everywhere (so inference is not the identity), seeded. */
function randomizeBn(m: tfl.LayersModel, seed: number): void {
  for (const l of m.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const c = l.getWeights()[0]!.shape[0]!;
    const u = (lo: number, hi: number, s: number) => tf.randomUniform([c], lo, hi, 'float32', s);
    l.setWeights([u(0.5, 1.5, seed++), u(-0.5, 0.5, seed++), u(-0.5, 0.5, seed++), u(0.5, 2, seed++)]);
  }
}

/**
 * Makes channels `zero` of `producer` output exactly 0 all the way to the consumers: zero filters and
 * bias, and BN beta = mean = 0 for those channels in the BNs listed.
 */
function silence(m: tfl.LayersModel, producer: string, bns: string[], zero: number[]): void {
  const layer = m.getLayer(producer);
  const ws = layer.getWeights();
  const c = ws[0]!.shape.at(-1)!;
  const mask = tf.tensor1d(Array.from({ length: c }, (_, i) => (zero.includes(i) ? 0 : 1)));
  layer.setWeights(ws.map((w) => tf.mul(w, mask)));
  for (const name of bns) {
    const [g, b, mean, v] = m.getLayer(name).getWeights() as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
    m.getLayer(name).setWeights([g, tf.mul(b, mask), tf.mul(mean, mask), v]);
  }
}

/** The outputs of the named layers. */
function probe(m: tfl.LayersModel, names: string[], x: tf.Tensor): tf.Tensor[] {
  const p = tfl.model({
    inputs: m.inputs,
    outputs: names.map((n) => m.getLayer(n).output as tfl.SymbolicTensor),
  });
  return p.predict(x) as tf.Tensor[];
}

function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  let d = 0;
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i]! - y[i]!));
    s = Math.max(s, Math.abs(x[i]!));
  }
  return d / s;
}

const evens = (n: number) => Array.from({ length: n / 2 }, (_, i) => 2 * i);
const odds = (n: number) => Array.from({ length: n / 2 }, (_, i) => 2 * i + 1);

describe('structured channel pruning: groups', () => {
  it('ResNet-8: only the inside of each block; channels feeding a residual add are kept', () => {
    const m = resnet8();
    const groups = channelGroups(m);
    assert.deepEqual(
      groups.map((g) => [g.producer, g.bn, g.touched.map((t) => `${t.layer}:${t.role}`)]),
      [1, 2, 3].map((s) => [
        `layer${s}.0.conv1`,
        `layer${s}.0.bn1`,
        [`layer${s}.0.bn1:bn`, `layer${s}.0.relu:pass`, `layer${s}.0.conv2:consumer`],
      ]),
    );
    assert.match(
      traceGroup(m, m.getLayer('conv1')) as string,
      /'conv1' reaches 'layer1\.0\.add' \(Add\), which merges/,
    );
    assert.match(traceGroup(m, m.getLayer('layer1.0.conv2')) as string, /reaches 'layer1\.0\.add'/);
    assert.match(traceGroup(m, m.getLayer('fc')) as string, /'fc' is a model output/);
  });

  it('MobileNetV2: through the depthwise conv to the projection; the last conv through GAP to the classifier', () => {
    const g = channelGroups(mobilenet());
    const b = g.find((x) => x.producer === 'blocks.1.0.conv.0')!;
    assert.deepEqual(
      b.touched.map((t) => `${t.layer}:${t.role}`),
      [
        'blocks.1.0.conv.1:bn',
        'blocks.1.0.conv.2:pass',
        'blocks.1.0.conv.3:depthwise',
        'blocks.1.0.conv.4:bn',
        'blocks.1.0.conv.5:pass',
        'blocks.1.0.conv.6:consumer',
      ],
    );
    const head = g.find((x) => x.producer === 'conv2.0')!;
    assert.deepEqual(
      head.touched.map((t) => `${t.layer}:${t.role}`),
      ['conv2.1:bn', 'conv2.2:pass', 'avgpool:pass', 'classifier.0:consumer'],
    );
    // The projection of a residual block feeds the add: never a group.
    assert.ok(!g.some((x) => x.producer === 'blocks.1.1.conv.6'), 'a residual projection is a group');
  });

  it('LightNN: conv -> pool -> conv, conv -> pool -> flatten -> dense, dense -> dropout -> dense', () => {
    const g = channelGroups(lightnn());
    assert.deepEqual(
      g.map((x) => [x.producer, x.bn, x.touched.map((t) => `${t.layer}:${t.role}`)]),
      [
        ['features.conv1', null, ['features.pool1:pass', 'features.conv2:consumer']],
        ['features.conv2', null, ['features.pool2:pass', 'flatten:flatten', 'classifier.fc1:consumer']],
        ['classifier.fc1', null, ['classifier.dropout:pass', 'classifier.fc2:consumer']],
      ],
    );
  });
});

describe('structured channel pruning: rebuilt models', () => {
  it('ResNet-8 at 50%: shapes and parameters shrink as computed by hand; it still runs and trains', async () => {
    await tf.setBackend('native');
    const m = resnet8();
    const { model: small, kept } = pruneChannels(m, { fraction: 0.5, criterion: 'l1' });
    assert.deepEqual(
      Object.entries(kept).map(([k, v]) => [k, v.length]),
      [
        ['layer1.0.conv1', 8],
        ['layer2.0.conv1', 16],
        ['layer3.0.conv1', 32],
      ],
    );
    assert.deepEqual(small.getLayer('layer3.0.conv1').getWeights()[0]!.shape, [3, 3, 32, 32]);
    assert.deepEqual(small.getLayer('layer3.0.bn1').getWeights()[2]!.shape, [32]);
    assert.deepEqual(small.getLayer('layer3.0.conv2').getWeights()[0]!.shape, [3, 3, 32, 64]);
    // Removed per block (cin, planes p): conv1 9 cin p/2, BN 4 p/2, conv2 9 (p/2) p.
    const saved = (cin: number, p: number) => (9 * cin * p) / 2 + 2 * p + (9 * p * p) / 2;
    assert.equal(small.countParams(), m.countParams() - saved(16, 16) - saved(16, 32) - saved(32, 64));
    const x = tf.randomNormal([2, 12, 12, 1], 0, 1, 'float32', 1);
    assert.deepEqual((small.predict(x) as tf.Tensor).shape, [2, 10]);
    const { value, grads } = tf.variableGrads(
      () => tf.mean(tf.square(small.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
    );
    assert.ok(Number.isFinite(value.dataSync()[0]!), 'finite loss');
    assert.ok(Object.keys(grads).length > 0, 'gradients');
    // The source model is unchanged.
    assert.deepEqual(m.getLayer('layer3.0.conv1').getWeights()[0]!.shape, [3, 3, 32, 64]);
  });

  it('removing channels that are exactly zero leaves the outputs unchanged (conv -> BN -> ReLU -> conv)', async () => {
    await tf.setBackend('native');
    const m = resnet8(2);
    randomizeBn(m, 10);
    silence(m, 'layer2.0.conv1', ['layer2.0.bn1'], odds(32));
    const x = tf.randomNormal([3, 12, 12, 1], 0, 1, 'float32', 4);
    const before = m.predict(x) as tf.Tensor;
    const { model: small, kept } = pruneChannels(m, {
      fraction: 0.5,
      criterion: 'l1',
      only: ['layer2.0.conv1'],
    });
    assert.deepEqual(kept['layer2.0.conv1'], evens(32));
    assert.deepEqual(small.getLayer('layer2.0.conv2').getWeights()[0]!.shape, [3, 3, 16, 32]);
    assert.ok(maxRelDiff(before, small.predict(x) as tf.Tensor) < 1e-5, 'outputs changed');
  });

  it('... through a depthwise conv and through global pooling into the classifier (MobileNetV2)', async () => {
    await tf.setBackend('native');
    const m = mobilenet(3);
    randomizeBn(m, 20);
    const expand = m.getLayer('blocks.1.0.conv.0').getWeights()[0]!.shape[3]!; // 4 * 6 = 24
    silence(m, 'blocks.1.0.conv.0', ['blocks.1.0.conv.1', 'blocks.1.0.conv.4'], evens(expand));
    silence(m, 'conv2.0', ['conv2.1'], evens(1280));
    // The classifier's N(0, 0.01) init would make the logits too small to compare.
    const cls = m.getLayer('classifier.0');
    cls.setWeights([tf.randomNormal([1280, 10], 0, 1, 'float32', 7), cls.getWeights()[1]!]);
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 5);
    const names = ['blocks.1.0.conv.7', 'classifier.0'];
    const before = probe(m, names, x);
    const { model: small } = pruneChannels(m, {
      fraction: 0.5,
      criterion: 'l1',
      only: ['blocks.1.0.conv.0', 'conv2.0'],
    });
    assert.deepEqual(small.getLayer('blocks.1.0.conv.3').getWeights()[0]!.shape, [3, 3, expand / 2, 1]);
    assert.deepEqual(small.getLayer('blocks.1.0.conv.6').getWeights()[0]!.shape.slice(2), [expand / 2, 6]);
    assert.deepEqual(small.getLayer('classifier.0').getWeights()[0]!.shape, [640, 10]);
    probe(small, names, x).forEach((after, i) => {
      assert.ok(maxRelDiff(before[i]!, after) < 1e-5, names[i]);
    });
  });

  it('... through pooling, flatten (NHWC feature order) and dense layers with biases (LightNN)', async () => {
    await tf.setBackend('native');
    const m = lightnn(4);
    silence(m, 'features.conv2', [], [0, 3, 4, 9, 15]);
    silence(m, 'classifier.fc1', [], odds(256));
    const x = tf.randomNormal([2, 8, 8, 1], 0, 1, 'float32', 6);
    const before = m.predict(x) as tf.Tensor;
    const { model: small, kept } = pruneChannels(m, {
      fraction: 5 / 16,
      criterion: 'l1',
      only: ['features.conv2', 'classifier.fc1'],
    });
    assert.deepEqual(kept['features.conv2'], [1, 2, 5, 6, 7, 8, 10, 11, 12, 13, 14]);
    // fraction 5/16 of fc1's 256 units: the 80 smallest-L1 units go, all of them zero ones.
    assert.equal(kept['classifier.fc1']!.length, 176);
    assert.deepEqual(small.getLayer('classifier.fc1').getWeights()[0]!.shape, [11 * 2 * 2, 176]);
    assert.ok(maxRelDiff(before, small.predict(x) as tf.Tensor) < 1e-5, 'outputs changed');
  });

  it('BN-scale: the largest |gamma| stay, per layer or with one global threshold', () => {
    const m = resnet8();
    const gammas = [16, 32, 64].map((c, s) =>
      Float32Array.from({ length: c }, (_, i) => ((i * 37 + s * 11) % 97) / 97 - 0.5),
    );
    [1, 2, 3].forEach((s, i) => {
      const bn = m.getLayer(`layer${s}.0.bn1`);
      const ws = bn.getWeights();
      bn.setWeights([tf.tensor1d(gammas[i]!), ...ws.slice(1)]);
    });
    const perLayer = pruneChannels(m, { fraction: 0.25, criterion: 'bn-scale' }).kept;
    gammas.forEach((g, i) => {
      const want = keptChannels(Float32Array.from(g, Math.abs), 0.25);
      assert.deepEqual(perLayer[`layer${i + 1}.0.conv1`], want);
    });
    // Global: the 28 smallest |gamma| of all 112 go, wherever they are (reference: a sort here).
    const all = gammas.flatMap((g, i) => Array.from(g, (v, c) => ({ i, c, a: Math.abs(v) })));
    all.sort((p, q) => p.a - q.a || p.i - q.i || p.c - q.c);
    const dropped = all.slice(0, 28);
    const global = pruneChannels(m, { fraction: 0.25, criterion: 'bn-scale', scope: 'global' }).kept;
    gammas.forEach((g, i) => {
      const want = Array.from(g.keys()).filter((c) => !dropped.some((d) => d.i === i && d.c === c));
      assert.deepEqual(global[`layer${i + 1}.0.conv1`], want);
    });
    assert.ok(
      Math.abs(slimmingPenalty(m).dataSync()[0]! - all.reduce((a, d) => a + d.a, 0)) < 1e-4,
      'penalty',
    );
  });

  it('refuses what it cannot do, naming the layer', () => {
    const m = resnet8();
    assert.throws(
      () => pruneChannels(m, { fraction: 0.5, criterion: 'l1', only: ['conv1'] }),
      /cannot prune 'conv1': 'conv1' reaches 'layer1\.0\.add' \(Add\), which merges it with other tensors/,
    );
    assert.throws(
      () => pruneChannels(m, { fraction: 0.5, criterion: 'l1', only: ['nope'] }),
      /no layer 'nope'/,
    );
    assert.throws(
      () => pruneChannels(m, { fraction: 1, criterion: 'l1' }),
      /fraction must be in \[0, 1\), got 1/,
    );
    assert.throws(
      () => pruneChannels(lightnn(), { fraction: 0.5, criterion: 'bn-scale' }),
      /'bn-scale' needs a batch norm right after 'features\.conv1'/,
    );
    assert.deepEqual(keptChannels(Float32Array.of(0.1, 3, 2, 3), 0.5), [1, 3]);
    assert.throws(
      () => pruneChannels(m, { fraction: 0.3, criterion: 'l1', roundTo: 0 }),
      /roundTo must be a positive integer, got 0/,
    );
  });

  it('roundTo: kept counts are multiples (nearest, at least one multiple, at most all), best channels kept', async () => {
    await tf.setBackend('native');
    assert.equal(roundKept(23, 32, 8), 24);
    assert.equal(roundKept(45, 64, 8), 48);
    assert.equal(roundKept(11, 16, 8), 8);
    assert.equal(roundKept(12, 16, 8), 16);
    assert.equal(roundKept(3, 16, 8), 8);
    assert.equal(roundKept(5, 6, 8), 6);
    const s = Float32Array.of(5, 1, 4, 2, 8, 7, 0, 3, 6, 9);
    // 10 channels at 30%: 7 kept, rounded to 8 (multiples of 4): all but the two lowest (idx 6, 1).
    assert.deepEqual(keptChannels(s, 0.3, 4), [0, 2, 3, 4, 5, 7, 8, 9]);
    const m = resnet8();
    for (const scope of ['layer', 'global'] as const) {
      const { kept } = pruneChannels(m, { fraction: 0.3, criterion: 'l1', scope, roundTo: 8 });
      for (const [producer, k] of Object.entries(kept)) {
        assert.equal(k.length % 8, 0, `${scope}: ${producer} keeps ${k.length}`);
        const sc = channelScores(m, channelGroups(m).find((g) => g.producer === producer)!, 'l1');
        const worstKept = Math.min(...k.map((c) => sc[c]!));
        const bestDropped = Math.max(
          ...Array.from(sc.keys())
            .filter((c) => !k.includes(c))
            .map((c) => sc[c]!),
        );
        assert.ok(k.length === sc.length || worstKept >= bestDropped, `${scope}: ${producer} keeps its best`);
      }
    }
  });
});
