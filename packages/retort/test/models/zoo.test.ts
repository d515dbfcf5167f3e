import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { buildModel, modelTaps, ZOO_ALIASES, ZOO_ENTRIES, zoo } from '../../src/models/index.js';

/** Written by fixtures/make_zoo_fixtures.py (PyTorch definitions following RepDistiller). */
interface ZooFixture {
  input: [number, number, number, number];
  num_classes: number;
  aliases: Record<string, string>;
  models: Record<
    string,
    {
      gain: number;
      params: number;
      bn_stats: number;
      output: number[];
      keys: string[];
      feats: number[][];
      feats_pre: number[][];
      logits: number[];
    }
  >;
}
const fx = JSON.parse(
  readFileSync(new URL('../fixtures/zoo_params.json', import.meta.url), 'utf8'),
) as ZooFixture;

/** The fixture's u(i, salt) in [-1, 1): a uint32 hash in exact integer arithmetic. */
function hashUniform(n: number, salt: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(i, 2654435761) + salt * 40503) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    out[i] = x / 2147483648 - 1;
  }
  return out;
}

function keyHash(key: string): number {
  let h = 0;
  for (let j = 0; j < key.length; j++) h += (j + 1) * key.charCodeAt(j);
  return h % 997;
}

/** PyTorch state_dict field, torch shape and layout permutation of one tfjs weight. */
function torchView(
  cls: string,
  field: string,
  shape: number[],
): { key: string; shape: number[]; perm?: number[] } {
  const [a = 0, b = 0, c = 0, d = 0] = shape;
  if (field === 'kernel' && cls === 'Conv2D')
    return { key: 'weight', shape: [d, c, a, b], perm: [2, 3, 1, 0] };
  if (field === 'depthwise_kernel') return { key: 'weight', shape: [c * d, 1, a, b], perm: [2, 3, 0, 1] };
  if (field === 'kernel' && cls === 'Dense') return { key: 'weight', shape: [b, a], perm: [1, 0] };
  const names: Record<string, string> = {
    bias: 'bias',
    gamma: 'weight',
    beta: 'bias',
    moving_mean: 'running_mean',
    moving_variance: 'running_var',
  };
  const key = names[field];
  if (key === undefined) throw new Error(`no PyTorch counterpart for ${cls} weight ${field}`);
  return { key, shape };
}

/** Every weight of `model` as (PyTorch key, layer, index, torch view). */
function torchKeys(model: tfl.LayersModel) {
  const out: { key: string; layer: tfl.layers.Layer; view: ReturnType<typeof torchView> }[] = [];
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      const field = w.originalName.split('/').pop()!;
      const view = torchView(layer.getClassName(), field, w.shape as number[]);
      out.push({ key: `${layer.name}.${view.key}`, layer, view });
    }
  }
  return out;
}

/** Sets every weight from the fixture's formula (values made in PyTorch layout, then permuted). */
function setFormulaWeights(model: tfl.LayersModel, gain: number): void {
  const byLayer = new Map<tfl.layers.Layer, tf.Tensor[]>();
  for (const { key, layer, view } of torchKeys(model)) {
    const n = view.shape.reduce((p, q) => p * q, 1);
    const u = hashUniform(n, keyHash(key));
    const field = key.slice(key.lastIndexOf('.') + 1);
    const isBn = layer.getClassName() === 'BatchNormalization';
    const fanIn = view.shape.length === 4 ? view.shape[1]! * view.shape[2]! * view.shape[3]! : view.shape[1]!;
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const s = u[i]!;
      if (isBn)
        v[i] = { weight: 1 + 0.2 * s, bias: 0.1 * s, running_mean: 0.1 * s, running_var: 1 + 0.3 * s }[
          field
        ]!;
      else v[i] = field === 'weight' ? s * Math.sqrt(3.0 / fanIn) * gain : 0.05 * s;
    }
    const t = tf.tensor(v, view.shape);
    const list = byLayer.get(layer) ?? [];
    list.push(view.perm ? tf.transpose(t, view.perm) : t);
    if (view.perm) t.dispose();
    byLayer.set(layer, list);
  }
  for (const [layer, ws] of byLayer) {
    layer.setWeights(ws);
    for (const w of ws) w.dispose();
  }
}

const trainableCount = (m: tfl.LayersModel): number =>
  m.trainableWeights.reduce((s, w) => s + tf.util.sizeFromShape(w.shape as number[]), 0);

const outShape = (m: tfl.LayersModel, layer: string): number[] =>
  (m.getLayer(layer).outputShape as number[]).slice(1);

describe('model zoo', () => {
  it('fixture and zoo list the same models and aliases', () => {
    assert.deepEqual(Object.keys(ZOO_ENTRIES).sort(), Object.keys(fx.models).sort());
    assert.deepEqual(ZOO_ALIASES, fx.aliases);
    for (const [alias, target] of Object.entries(ZOO_ALIASES)) assert.equal(zoo.get(alias), zoo.get(target));
  });

  for (const name of Object.keys(ZOO_ENTRIES)) {
    it(`${name}: params, PyTorch state_dict names, logits and stage taps match PyTorch`, async () => {
      await tf.setBackend('native');
      const ref = fx.models[name]!;
      const m = buildModel(name, { seed: 1 });
      // PyTorch's parameters() are tfjs's trainable weights; tfjs also counts BN running statistics.
      assert.equal(trainableCount(m), ref.params, 'trainable parameters');
      assert.equal(m.countParams(), ref.params + ref.bn_stats, 'countParams (with BN statistics)');
      const keys = torchKeys(m).map((k) => k.key);
      assert.deepEqual([...keys].sort(), [...ref.keys].sort(), 'layer names map onto the state_dict keys');

      setFormulaWeights(m, ref.gain);
      const [n, h, w, c] = fx.input;
      const x = tf.tensor(Float32Array.from(hashUniform(n * h * w * c, 7)), fx.input);
      const y = m.predict(x) as tf.Tensor;
      assert.deepEqual(y.shape, ref.output);
      const got = y.dataSync();
      const scale = Math.max(...ref.logits.map(Math.abs));
      let worst = 0;
      for (const [i, r] of ref.logits.entries()) worst = Math.max(worst, Math.abs(got[i]! - r));
      assert.ok(
        worst <= 1e-4 * scale + 1e-5,
        `${name}: logits differ from PyTorch by ${worst} (max |logit| ${scale})`,
      );
      tf.dispose([x, y]);

      const taps = modelTaps(name);
      assert.deepEqual(
        taps.stages.map((s) => outShape(m, s.output)),
        ref.feats,
      );
      assert.deepEqual(
        taps.stages.map((s) => outShape(m, s.preact)),
        ref.feats_pre,
      );
      for (const bn of taps.bnBeforeRelu) assert.equal(m.getLayer(bn).getClassName(), 'BatchNormalization');
      m.dispose();
    });
  }

  it('every family builds and runs at 28x28x1 with 10 classes (and 33x33x3 with 7)', async () => {
    await tf.setBackend('native');
    for (const name of ['resnet8', 'resnet8x4', 'wrn_16_2', 'vgg8', 'mobilenetv2', 'shufflenetv2']) {
      for (const [shape, k] of [
        [[28, 28, 1], 10],
        [[33, 33, 3], 7],
      ] as const) {
        const m = buildModel(name, { inputShape: shape, numClasses: k });
        const y = tf.tidy(() => m.predict(tf.randomNormal([2, ...shape])) as tf.Tensor);
        assert.deepEqual(y.shape, [2, k], `${name} at ${shape.join('x')}`);
        assert.ok(Array.from(y.dataSync()).every(Number.isFinite), `${name}: non-finite logits`);
        for (const s of modelTaps(name).stages) m.getLayer(s.output);
        y.dispose();
        m.dispose();
      }
    }
  });

  it('a training-mode gradient reaches every trainable weight of each family', async () => {
    await tf.setBackend('native');
    for (const name of ['resnet8', 'wrn_16_1', 'vgg8', 'mobilenetv2', 'shufflenetv2']) {
      const m = buildModel(name, { seed: 1, inputShape: [16, 16, 3], numClasses: 10 });
      const x = tf.randomNormal([2, 16, 16, 3]);
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const { value, grads } = tf.variableGrads(
        () => tf.mean(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar,
        vars,
      );
      assert.equal(Object.keys(grads).length, vars.length);
      for (const [k, g] of Object.entries(grads)) {
        const v = g.dataSync();
        assert.ok(v.every(Number.isFinite), `${name}: gradient of ${k} is not finite`);
        // A BN shift followed (through linear layers) only by training-mode BNs has an exactly zero
        // gradient: MobileNetV2's linear bottlenecks. Every other weight, in every family, gets one.
        if (!(name === 'mobilenetv2' && k.includes('/beta')))
          assert.ok(
            v.some((q) => q !== 0),
            `${name}: gradient of ${k} is zero`,
          );
      }
      tf.dispose([x, value, ...Object.values(grads)]);
      m.dispose();
    }
  });

  it('initialisation follows RepDistiller', async () => {
    await tf.setBackend('native');
    const maxAbs = (t: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);
    const std = (t: tf.Tensor): number => tf.tidy(() => tf.sqrt(tf.moments(t).variance).dataSync()[0]!);
    const r = buildModel('resnet8x4', { seed: 3 });
    const [k] = r.getLayer('layer3.0.conv2').getWeights();
    assert.ok(Math.abs(std(k!) / Math.sqrt(2 / (9 * 256)) - 1) < 0.02, 'kaiming normal, fan_out');
    const [gamma, beta] = r.getLayer('layer3.0.bn2').getWeights();
    assert.deepEqual([tf.min(gamma!).dataSync()[0], maxAbs(gamma!), maxAbs(beta!)], [1, 1, 0]);
    const [, fcBias] = r.getLayer('fc').getWeights();
    assert.ok(maxAbs(fcBias!) <= 1 / Math.sqrt(256) && std(fcBias!) > 0, 'fc: PyTorch default');
    const v = buildModel('vgg8', { seed: 3 });
    const [vk, vb] = v.getLayer('classifier').getWeights();
    assert.ok(Math.abs(std(vk!) / 0.01 - 1) < 0.05 && maxAbs(vb!) === 0, 'classifier N(0, 0.01)');
    const s = buildModel('shufflenetv2', { seed: 3 });
    const [dw] = s.getLayer('layer1.1.conv2').getWeights();
    assert.ok(maxAbs(dw!) <= 1 / 3 && std(dw!) > 0.15, 'depthwise: PyTorch default, fan_in 9');
    for (const m of [r, v, s]) m.dispose();
  });

  it('the same seed gives the same weights', async () => {
    await tf.setBackend('native');
    const a = buildModel('resnet8', { seed: 5 });
    const b = buildModel('resnet8', { seed: 5 });
    const [wa] = a.getLayer('layer2.0.conv1').getWeights();
    const [wb] = b.getLayer('layer2.0.conv1').getWeights();
    assert.deepEqual(Array.from(wa!.dataSync()), Array.from(wb!.dataSync()));
    a.dispose();
    b.dispose();
  });

  it('unknown names and options fail listing the known ones', () => {
    assert.throws(
      () => buildModel('resnet9'),
      (e: Error) =>
        /unknown model 'resnet9'/.test(e.message) &&
        /resnet8, resnet8x4/.test(e.message) &&
        /ShuffleV2/.test(e.message),
    );
    assert.throws(
      () => buildModel('resnet8', { widthMult: 2 }),
      /unknown option 'widthMult' \(known: inputShape/,
    );
    assert.throws(() => buildModel('mobilenetv2', { widthMult: 'half' }), /widthMult must be a number/);
    assert.throws(() => buildModel('shufflenetv2', { netSize: 0.7 }), /netSize must be one of 0.2, 0.3/);
    assert.throws(() => buildModel('vgg8', { inputShape: [4, 4, 3] }), /must be >= 8/);
  });

  it('model options reach the builders', () => {
    const m = buildModel('MobileNetV2', { widthMult: 1, expansion: 4, numClasses: 10 });
    assert.equal(m.name, 'mobilenetv2');
    assert.deepEqual(outShape(m, 'conv1.0'), [16, 16, 32]);
    assert.deepEqual(outShape(m, 'blocks.1.0.conv.0'), [16, 16, 64]);
    const s = buildModel('ShuffleV2', { netSize: 0.5 });
    assert.deepEqual(outShape(s, 'layer1.3.shuffle'), [16, 16, 48]);
    for (const x of [m, s]) x.dispose();
  });
});
