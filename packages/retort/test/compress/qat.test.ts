import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fakeQuantKernel, withWeightQat } from '../../src/compress/quantize/qat.js';
import type { TrainTask } from '../../src/train/trainer.js';

describe('weight QAT', () => {
  it('fake-quantized kernels take at most 255 values per output channel and stay within half a step', () => {
    const k = tf.randomNormal([3, 3, 4, 5], 0, 1, 'float32', 1);
    const q = fakeQuantKernel(k);
    const kd = k.dataSync();
    const qd = q.dataSync();
    for (let c = 0; c < 5; c++) {
      let m = 0;
      for (let i = c; i < kd.length; i += 5) m = Math.max(m, Math.abs(kd[i]!));
      const step = m / 127;
      const vals = new Set<number>();
      for (let i = c; i < kd.length; i += 5) {
        assert.ok(Math.abs(qd[i]! - kd[i]!) <= step / 2 + 1e-6);
        vals.add(Math.round(qd[i]! / step));
      }
      assert.ok([...vals].every((v) => v >= -127 && v <= 127));
    }
  });

  it('steps run on quantized weights; the float master receives exactly the optimizer update', async () => {
    await tf.setBackend('native');
    const x = tfl.input({ shape: [4] });
    const model = tfl.model({
      inputs: x,
      outputs: tfl.layers
        .dense({ units: 2, useBias: false, kernelInitializer: tfl.initializers.randomNormal({ seed: 3 }) })
        .apply(x) as tfl.SymbolicTensor,
    });
    const kernel = model.getLayer(model.layers[1]!.name).getWeights()[0] as tf.Variable;
    const w0 = kernel.clone();
    const data = tf.randomNormal([8, 4], 0, 1, 'float32', 2);
    let seen: Float32Array | null = null;
    const task: TrainTask = {
      model,
      loss: () => {
        seen = kernel.dataSync().slice() as Float32Array;
        const total = tf.mean(tf.square(model.apply(data) as tf.Tensor)) as tf.Scalar;
        return { total, terms: { l2: total } };
      },
    };
    const qat = withWeightQat(task, model);
    const opt = tf.train.sgd(0.1);
    const input = {
      x: tf.zeros([1, 1, 1, 1]) as tf.Tensor4D,
      y: tf.zeros([1], 'int32') as tf.Tensor1D,
      index: new Uint32Array(1),
      epoch: 0,
    };
    qat.prepare!(input);
    const q = fakeQuantKernel(w0);
    assert.deepEqual(Array.from(kernel.dataSync()), Array.from(q.dataSync()), 'forward on quantized weights');
    const g = tf.grad((w: tf.Tensor) => tf.mean(tf.square(tf.matMul(data, w))))(q);
    opt.minimize(() => qat.loss(input).total);
    qat.release!();
    qat.finish();
    assert.deepEqual(Array.from(seen!), Array.from(q.dataSync()));
    const want = tf.sub(w0, tf.mul(0.1, g)).dataSync();
    const got = kernel.dataSync();
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-6, `weight ${i}`);
  });
});
