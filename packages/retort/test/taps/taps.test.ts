import assert from 'node:assert/strict';
import { it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { tapModel } from '../../src/taps/taps.js';

function net(): tfl.LayersModel {
  const input = tfl.input({ shape: [6, 6, 2] });
  const c1 = tfl.layers
    .conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'c1' })
    .apply(input) as tfl.SymbolicTensor;
  const r1 = tfl.layers.reLU({ name: 'r1' }).apply(c1) as tfl.SymbolicTensor;
  const c2 = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' })
    .apply(r1);
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c2);
  const out = tfl.layers.dense({ units: 5, name: 'fc' }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out, name: 'net' });
}

it('returns logits and named features sharing the weights', async () => {
  await tf.setBackend('native');
  const m = net();
  const t = tapModel(m, ['r1', 'r1:pre', 'gap']);
  assert.deepEqual(t.shapes, [[6, 6, 3], [6, 6, 3], [4]]);
  const x = tf.randomNormal([2, 6, 6, 2]);
  const { logits, features } = t.run(x, false);
  assert.deepEqual(Array.from(logits.dataSync()), Array.from((m.predict(x) as tf.Tensor).dataSync()));
  const pre = features[1]!.dataSync();
  const post = features[0]!.dataSync();
  assert.ok(
    Array.from(pre).some((v) => v < 0),
    'pre-activation should have negatives',
  );
  assert.deepEqual(
    Array.from(post),
    Array.from(pre).map((v) => Math.max(v, 0)),
  );
  assert.equal(t.model.countParams(), m.countParams());
  // The view trains the same variables: changing one weight changes both.
  m.getLayer('fc').setWeights([tf.zeros([4, 5]), tf.ones([5])]);
  assert.deepEqual(Array.from(t.run(x, false).logits.dataSync()), new Array(10).fill(1));
});

it('errors name the tap and the problem', () => {
  const m = net();
  assert.throws(
    () => tapModel(m, ['nope']),
    /tap 'nope': model net has no layer 'nope' \(layers: .*c1, r1, c2/,
  );
  assert.throws(() => tapModel(m, ['c2:pre']), /layer 'c2' fuses its relu activation/);
});
