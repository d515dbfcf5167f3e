import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { exportTfjs, loadTfjs, quantizeWeight, WEIGHTS_FILE } from '../../src/export/tfjs.js';
import { buildModel } from '../../src/models/index.js';
import { perturb } from '../models/weights.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-tfjs-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('tfjs format export', () => {
  for (const [name, options] of [
    ['resnet8', {}],
    ['shufflenetv2', { netSize: 0.5 }],
  ] as const) {
    it(`${name}: model.json + shard load back with tf.loadLayersModel and give identical outputs`, async () => {
      await tf.setBackend('native');
      const model = buildModel(name, { ...options, inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
      // Every weight (BN statistics included) moved off the values its seeded initializer gives, so
      // a weight the export dropped would be rebuilt differently and change the outputs.
      perturb(model);
      const dir = join(scratch, name);
      await exportTfjs(model, dir);
      assert.ok(existsSync(join(dir, 'model.json')) && existsSync(join(dir, 'group1-shard1of1.bin')));
      const back = await loadTfjs(dir);
      const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 1);
      const a = (model.predict(x) as tf.Tensor).dataSync();
      const b = (back.predict(x) as tf.Tensor).dataSync();
      assert.deepEqual(Array.from(b), Array.from(a));
      assert.ok(back.layers.some((l) => l.getClassName() === 'BatchNormalization'));
    });
  }
});

describe('tfjs format export, quantized weights (uint8 / uint16)', () => {
  it('quantizeWeight: within half a step, range widened to hold 0, 0 exact, an all-zero tensor', () => {
    const values = Float32Array.from([0.25, 0.5, 0, 1.75, 0.1, 0.3]);
    const { bytes, min, scale } = quantizeWeight(values, 'uint8', 'w');
    assert.equal(bytes.length, values.length);
    // Positive weights: the range is [0, 1.75], so min is 0 and the step 1.75 / 255.
    assert.equal(min, 0);
    assert.equal(scale, 1.75 / 255);
    const signed = Float32Array.from([-0.7, 0, 0.31, 1.2, -0.05]);
    for (const dtype of ['uint8', 'uint16'] as const) {
      const q = quantizeWeight(signed, dtype, 'w');
      const view = new DataView(q.bytes.buffer);
      const codes = Array.from(signed, (_, i) =>
        dtype === 'uint8' ? view.getUint8(i) : view.getUint16(2 * i, true),
      );
      // tfjs-core's decode: code * scale + min, into float32.
      const back = codes.map((c) => Math.fround(c * q.scale + q.min));
      assert.equal(back[1], 0);
      signed.forEach((v, i) => {
        assert.ok(Math.abs(back[i]! - v) <= q.scale / 2 + 1e-7, `${dtype} ${v} -> ${back[i]}`);
      });
    }
    const zeros = quantizeWeight(new Float32Array(4), 'uint16', 'z');
    assert.deepEqual(Array.from(zeros.bytes), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(zeros.min, 0);
    assert.throws(
      () => quantizeWeight(Float32Array.from([1, Number.NaN]), 'uint8', 'bad'),
      /'bad' holds NaN/,
    );
  });

  it('resnet8: .bin is 0.25x / 0.5x of fp32, model.json carries tfjs quantization entries, reloads with logits within the step bound', async (t) => {
    await tf.setBackend('native');
    const model = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
    perturb(model);
    const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 1);
    const ref = (model.predict(x) as tf.Tensor).dataSync();
    const refMax = Math.max(...Array.from(ref, Math.abs));
    const fp32Dir = join(scratch, 'q-fp32');
    await exportTfjs(model, fp32Dir);
    const fp32Size = statSync(join(fp32Dir, WEIGHTS_FILE)).size;
    const original = model.getWeights().map((w) => w.dataSync());
    const errors: Record<string, number> = {};
    for (const [dtype, ratio, qmax] of [
      ['uint8', 0.25, 255],
      ['uint16', 0.5, 65535],
    ] as const) {
      const dir = join(scratch, `q-${dtype}`);
      await exportTfjs(model, dir, { quantize: dtype });
      assert.equal(statSync(join(dir, WEIGHTS_FILE)).size / fp32Size, ratio);
      const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
      const specs = json.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
      assert.ok(specs.every((s) => s.dtype === 'float32' && s.quantization?.dtype === dtype));
      // Reloaded through tfjs-core's own decoder: every weight within half its tensor's step, plus
      // the float32 rounding of the decoded value (half an ulp, <= 2^-24 |w|).
      const back = await loadTfjs(dir);
      back.getWeights().forEach((w, i) => {
        const step = specs[i]!.quantization!.scale!;
        const d = w.dataSync();
        const o = original[i]!;
        const bad = d.findIndex((v, j) => !(Math.abs(v - o[j]!) <= step / 2 + 2 ** -23 * Math.abs(o[j]!)));
        assert.equal(bad, -1, `${specs[i]!.name}[${bad}]: ${o[bad]} came back ${d[bad]}, step ${step}`);
      });
      const out = (back.predict(x) as tf.Tensor).dataSync();
      const err = Math.max(...Array.from(out, (v, i) => Math.abs(v - ref[i]!)));
      errors[dtype] = err;
      t.diagnostic(`${dtype}: max |logit error| / max |logit| = ${(err / refMax).toExponential(2)}`);
      // Each weight moves by at most half a step, and a step is (range / qmax) <= 2 max|w| / qmax, so
      // every one of the T weight tensors is off by at most 1/qmax of its largest magnitude. To first
      // order those relative errors add up through the network: |logit error| <= (T / qmax) max|logit|.
      assert.ok(err <= (specs.length / qmax) * refMax, `${dtype}: ${err}`);
      assert.ok(err > 0, `${dtype}: the weights did not change`);
    }
    // The uint16 step is 257 times finer; its error must be far smaller than uint8's.
    assert.ok(errors['uint16']! * 30 < errors['uint8']!, JSON.stringify(errors));
  });
});
