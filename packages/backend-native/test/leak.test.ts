import assert from 'node:assert/strict';
import { it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import * as tfl from '@tensorflow/tfjs-layers';
import { rand, requireNative, tf } from './parity.js';

// 100 training steps must leave the tensor count and bytes unchanged (no kernel leaks an
// intermediate) and RSS flat (the buffer pool must recycle, not hoard). Activations are sized so a
// leak is unmistakable against RSS noise (GC timing, malloc arenas: up to ~30 MB seen here): the
// first conv's output is 32x32x32x32 floats = 4 MB, so leaking one per step adds 320 MB over the
// 80 measured steps, against a 64 MB bound.
// Full collections before each RSS reading, so that garbage JS kernels left behind is not counted.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

it('100 training steps: numTensors unchanged, RSS flat', () => {
  requireNative();
  tf.setBackend('native');
  const input = tfl.input({ shape: [32, 32, 3] });
  let h = tfl.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input);
  h = tfl.layers.maxPooling2d({ poolSize: 2 }).apply(h);
  h = tfl.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(h);
  h = tfl.layers.averagePooling2d({ poolSize: 2 }).apply(h);
  h = tfl.layers.flatten().apply(h);
  h = tfl.layers.dense({ units: 32, activation: 'relu' }).apply(h);
  h = tfl.layers.dropout({ rate: 0.1 }).apply(h);
  const out = tfl.layers.dense({ units: 10 }).apply(h) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: out });
  const opt = tf.train.adam(1e-3);
  const x = tf.tensor4d(rand(32 * 32 * 32 * 3, 1), [32, 32, 32, 3]);
  const y = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: 32 }, (_, i) => i % 10),
      'int32',
    ),
    10,
  );

  const step = () => {
    const loss = opt.minimize(
      () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      true,
    );
    const v = loss!.dataSync()[0]!;
    loss!.dispose();
    assert.ok(Number.isFinite(v), `loss is ${v}`);
    return v;
  };
  const first = step();
  for (let i = 0; i < 19; i++) step();
  const tensors = tf.memory().numTensors;
  const bytes = tf.memory().numBytes;
  gc();
  const rss = process.memoryUsage().rss;
  let last = first;
  for (let i = 0; i < 80; i++) last = step();
  gc();
  assert.equal(tf.memory().numTensors, tensors, 'tensor count changed between step 20 and step 100');
  assert.equal(tf.memory().numBytes, bytes, 'tensor bytes changed between step 20 and step 100');
  const grown = (process.memoryUsage().rss - rss) / 2 ** 20;
  assert.ok(grown < 64, `RSS grew by ${grown.toFixed(1)} MB over 80 steps`);
  assert.ok(last < first, `loss did not fall (${first} -> ${last})`);
});
