/**
 * checkOnnx: one pass over the test set for several exports, each scored against the tfjs model
 * (top-1, top-1 agreement, largest logit difference) with the counts recomputed here by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { ImageDataset } from '../../src/data/dataset.js';
import { BatchLoader } from '../../src/data/loader.js';
import { exportOnnx } from '../../src/export/onnx.js';
import { checkOnnx } from '../../src/measure/onnx-check.js';
import { rowArgmax } from '../../src/util/argmax.js';
import { Rng } from '../../src/util/rng.js';

function images(n: number): ImageDataset {
  const r = new Rng(3);
  const data = new Uint8Array(n * 36);
  for (let i = 0; i < data.length; i++) data[i] = r.int(256);
  const labels = Uint8Array.from({ length: n }, () => r.int(3));
  return { name: 'noise', images: data, labels, count: n, height: 6, width: 6, channels: 1, numClasses: 3 };
}

function model(seed: number): tfl.LayersModel {
  const input = tfl.input({ shape: [6, 6, 1] });
  const h = tfl.layers
    .conv2d({
      filters: 4,
      kernelSize: 3,
      activation: 'relu',
      kernelInitializer: tfl.initializers.glorotNormal({ seed }),
    })
    .apply(input);
  const flat = tfl.layers.flatten().apply(h);
  const out = tfl.layers
    .dense({ units: 3, kernelInitializer: tfl.initializers.glorotNormal({ seed: seed + 1 }) })
    .apply(flat) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('checkOnnx', () => {
  it("scores its own export (exact) and another model's export (counted here) in one pass", async () => {
    const ds = images(50);
    const test = new BatchLoader(ds, {
      batchSize: 16,
      shuffle: false,
      keepLast: true,
      mean: [0.5],
      std: [0.25],
      seed: 1,
    });
    const data = { test, shape: [6, 6, 1], numClasses: 3 };
    const m = model(1);
    const other = model(7);
    const [own, foreign] = await checkOnnx([exportOnnx(m), exportOnnx(other)], m, data);

    let ownCorrect = 0;
    let otherCorrect = 0;
    let agree = 0;
    let maxDiff = 0;
    for (const b of test.epoch()) {
      const x = tf.tensor4d(b.x, [b.n, 6, 6, 1]);
      const want = (m.predict(x) as tf.Tensor).dataSync();
      const got = (other.predict(x) as tf.Tensor).dataSync();
      for (let i = 0; i < b.n; i++) {
        if (rowArgmax(want, i, 3) === b.y[i]) ownCorrect++;
        if (rowArgmax(got, i, 3) === b.y[i]) otherCorrect++;
        if (rowArgmax(got, i, 3) === rowArgmax(want, i, 3)) agree++;
      }
      for (let j = 0; j < got.length; j++) maxDiff = Math.max(maxDiff, Math.abs(got[j]! - want[j]!));
    }

    assert.equal(own!.images, 50);
    assert.equal(own!.agreement, 100);
    assert.ok(own!.maxAbsDiff < 1e-4, `own export differs by ${own!.maxAbsDiff}`);
    assert.equal(own!.top1, (100 * ownCorrect) / 50);
    assert.equal(foreign!.top1, (100 * otherCorrect) / 50);
    assert.equal(foreign!.agreement, (100 * agree) / 50);
    assert.ok(foreign!.agreement < 100, 'two differently initialised models should disagree somewhere');
    assert.ok(Math.abs(foreign!.maxAbsDiff - maxDiff) < 1e-4, `${foreign!.maxAbsDiff} vs ${maxDiff}`);
  });
});
