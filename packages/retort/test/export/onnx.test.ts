/**
 * ONNX export checked in onnxruntime-node: every zoo family's outputs within 1e-4 of Retort's on
 * random inputs (BN with non-trivial running statistics), and a clear error for unsupported layers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { exportOnnx } from '../../src/export/onnx.js';
import { buildModel } from '../../src/models/index.js';

/** Gives every BN layer random running statistics and affine parameters (fresh ones are 0/1). */
function randomizeBn(model: tfl.LayersModel): void {
  let seed = 1;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const c = layer.getWeights()[0]!.shape[0]!;
    layer.setWeights([
      tf.randomUniform([c], 0.5, 1.5, 'float32', seed++),
      tf.randomNormal([c], 0, 0.2, 'float32', seed++),
      tf.randomNormal([c], 0, 0.2, 'float32', seed++),
      tf.randomUniform([c], 0.5, 2, 'float32', seed++),
    ]);
  }
}

async function compare(model: tfl.LayersModel, shape: number[], batch = 2): Promise<number> {
  const bytes = exportOnnx(model);
  const session = await ort.InferenceSession.create(bytes);
  const x = tf.randomNormal([batch, ...shape], 0, 1, 'float32', 7);
  const want = (model.predict(x) as tf.Tensor).dataSync();
  const res = await session.run({
    input: new ort.Tensor('float32', x.dataSync() as Float32Array, [batch, ...shape]),
  });
  const got = res['output']!.data as Float32Array;
  assert.equal(got.length, want.length);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i]! - want[i]!));
  return err;
}

describe('ONNX export (fp32) in onnxruntime', () => {
  const cases: [string, Record<string, number>, [number, number, number]][] = [
    ['resnet8', {}, [28, 28, 1]],
    ['lightnn', {}, [28, 28, 1]],
    ['vgg8', {}, [32, 32, 3]],
    ['wrn_16_1', {}, [32, 32, 3]],
    ['mobilenetv2', { widthMult: 0.5 }, [32, 32, 3]],
    ['shufflenetv2', { netSize: 0.5 }, [32, 32, 3]],
  ];
  for (const [name, options, shape] of cases) {
    it(`${name}: outputs within 1e-4 of Retort's`, async () => {
      await tf.setBackend('native');
      const model = buildModel(name, { ...options, inputShape: shape, numClasses: 10, seed: 3 });
      randomizeBn(model);
      const err = await compare(model, shape);
      assert.ok(err <= 1e-4, `max abs difference ${err}`);
    });
  }

  it('an unsupported layer is named with its class', () => {
    const x = tfl.input({ shape: [4] });
    const y = tfl.layers.embedding({ name: 'emb', inputDim: 5, outputDim: 2 }).apply(x) as tfl.SymbolicTensor;
    assert.throws(
      () => exportOnnx(tfl.model({ inputs: x, outputs: y })),
      /layer 'emb' of class Embedding is not supported/,
    );
  });
});

describe('ONNX int8 QDQ export in onnxruntime', () => {
  it('resnet8 and mobilenetv2: int8 weights, uint8 activations; top-1 agrees with fp32 on calibrated data', async () => {
    await tf.setBackend('native');
    const { calibrateRanges } = await import('../../src/export/onnx.js');
    for (const [name, options, shape] of [
      ['resnet8', {}, [28, 28, 1]],
      ['mobilenetv2', { widthMult: 0.5 }, [32, 32, 3]],
    ] as const) {
      const model = buildModel(name, { ...options, inputShape: [...shape], numClasses: 10, seed: 3 });
      randomizeBn(model);
      const calib = [0, 1, 2].map((s) => tf.randomNormal([16, ...shape], 0, 1, 'float32', 100 + s));
      const spec = calibrateRanges(model, calib);
      const bytes = exportOnnx(model, { quant: spec });
      const session = await ort.InferenceSession.create(bytes);
      const x = tf.randomNormal([64, ...shape], 0, 1, 'float32', 9);
      const ref = tf.argMax(model.predict(x) as tf.Tensor, -1).dataSync();
      const res = await session.run({
        input: new ort.Tensor('float32', x.dataSync() as Float32Array, [64, ...shape]),
      });
      const logits = tf.tensor(res['output']!.data as Float32Array, [64, 10]);
      const got = Array.from(tf.argMax(logits, -1).dataSync());
      const agree = got.filter((v: number, i: number) => v === ref[i]).length / 64;
      assert.ok(agree >= 0.9, `${name}: top-1 agreement ${agree}`);
      const fp32 = exportOnnx(model).length;
      assert.ok(bytes.length < fp32 / 2, `${name}: int8 file ${bytes.length} B vs fp32 ${fp32} B`);
    }
  });
});

describe('onnxruntime latency', () => {
  it('median over repeats, throughput = batch / median', async () => {
    const { measureOrtLatency } = await import('../../src/measure/latency.js');
    const model = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const l = await measureOrtLatency(exportOnnx(model), [28, 28, 1], 4, { warmup: 1, repeats: 3 });
    assert.equal(l.repeats, 3);
    assert.ok(l.medianMs > 0 && l.minMs <= l.medianMs);
    assert.ok(Math.abs(l.throughput - 4000 / l.medianMs) < 1e-9);
  });
});
