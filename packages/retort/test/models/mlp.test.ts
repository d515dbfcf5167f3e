import assert from 'node:assert/strict';
import { it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel } from '../../src/models/index.js';

it('mlp: parameter count, output shape, hidden option and its errors', async () => {
  await tf.setBackend('native');
  const m = buildModel('mlp', { inputShape: [28, 28, 1], numClasses: 10 });
  assert.equal(m.countParams(), 784 * 64 + 64 + 64 * 10 + 10);
  assert.deepEqual((m.predict(tf.zeros([3, 28, 28, 1])) as tf.Tensor).shape, [3, 10]);
  const deep = buildModel('mlp', { inputShape: [8, 8, 3], numClasses: 5, hidden: '32,16' });
  assert.equal(deep.countParams(), 192 * 32 + 32 + 32 * 16 + 16 + 16 * 5 + 5);
  assert.deepEqual(deep.layers.map((l) => l.name).slice(1), ['flatten', 'fc1', 'fc2', 'classifier']);
  assert.throws(() => buildModel('mlp', { hidden: '32,x' }), /option hidden must be positive integers/);
});
