import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { exportTfjs, loadTfjs } from '../../src/export/tfjs.js';
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
