/**
 * The ONNX export's op table (src/export/onnx/ops*.ts) on the layer kinds the zoo lacks: an
 * unfused ZeroPadding2D, a dilated 'same' conv, 'same' max and average pools with strides, a
 * depthwise conv with a channel multiplier, Permute, Reshape, Multiply, a concat on a non-channel
 * axis, batch norm over features, relu6 / sigmoid / tanh / softmax activations, ReLU with maxValue
 * and two outputs. (No dilated depthwise conv: tfjs-layers 4.22's DepthwiseConv2D ignores its
 * dilationRate, "TODO(cais): Add support for dilation", while the export writes it.) fp32 matches
 * tfjs in onnxruntime; the int8 placement each layer gets is the one its entry declares
 * (int8.ts), and the static int8 file runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';
import { int8Placement } from '../../src/export/onnx/int8.js';
import { opFor } from '../../src/export/onnx/ops.js';
import { graphFacts } from '../../src/export/onnx/walk.js';
import { calibrateRanges, exportOnnx, int8QuantPoints } from '../../src/export/onnx.js';
import { randomizeBn } from './onnx-check.js';

function kinds(): tfl.LayersModel {
  const init = (seed: number) => tfl.initializers.randomNormal({ seed, stddev: 0.5 });
  const x = tfl.input({ shape: [8, 8, 3], name: 'input' });
  const pad = tfl.layers.zeroPadding2d({ name: 'pad', padding: [1, 2] }).apply(x);
  const c1 = tfl.layers
    .conv2d({
      name: 'c1',
      filters: 4,
      kernelSize: 3,
      dilationRate: 2,
      padding: 'same',
      kernelInitializer: init(1),
    })
    .apply(pad);
  const a1 = tfl.layers.activation({ name: 'a1', activation: 'relu6' }).apply(c1);
  const dw = tfl.layers
    .depthwiseConv2d({
      name: 'dw',
      kernelSize: 3,
      depthMultiplier: 2,
      padding: 'same',
      activation: 'tanh',
      depthwiseInitializer: init(2),
    })
    .apply(a1);
  const bn = tfl.layers.batchNormalization({ name: 'bn' }).apply(dw);
  const mp = tfl.layers.maxPooling2d({ name: 'mp', poolSize: 3, strides: 2, padding: 'same' }).apply(bn);
  const ap = tfl.layers.averagePooling2d({ name: 'ap', poolSize: 3, strides: 2, padding: 'same' }).apply(bn);
  const mul = tfl.layers.multiply({ name: 'mul' }).apply([mp, ap] as tfl.SymbolicTensor[]);
  const sig = tfl.layers.activation({ name: 'sig', activation: 'sigmoid' }).apply(mul);
  const rl = tfl.layers.reLU({ name: 'rl', maxValue: 0.7 }).apply(sig);
  const perm = tfl.layers.permute({ name: 'perm', dims: [3, 1, 2] }).apply(rl);
  const cat = tfl.layers.concatenate({ name: 'cat', axis: 2 }).apply([perm, perm] as tfl.SymbolicTensor[]);
  const rs = tfl.layers.reshape({ name: 'rs', targetShape: [48, 10] }).apply(cat);
  const fl = tfl.layers.flatten({ name: 'fl' }).apply(rs);
  const bn1 = tfl.layers.batchNormalization({ name: 'bn1' }).apply(fl);
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c1);
  const d0 = tfl.layers.dense({ name: 'd0', units: 6, kernelInitializer: init(3) }).apply(gap);
  const d1 = tfl.layers
    .dense({ name: 'd1', units: 6, activation: 'relu', kernelInitializer: init(4) })
    .apply(bn1);
  const sum = tfl.layers.add({ name: 'sum' }).apply([d0, d1] as tfl.SymbolicTensor[]);
  const d2 = tfl.layers
    .dense({ name: 'd2', units: 3, kernelInitializer: init(5) })
    .apply(sum) as tfl.SymbolicTensor;
  const sm = tfl.layers.activation({ name: 'sm', activation: 'softmax' }).apply(d2) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: [d2, sm], name: 'kinds' });
}

/** Largest |onnxruntime - tfjs| over both outputs. */
async function maxError(model: tfl.LayersModel, bytes: Uint8Array, x: tf.Tensor): Promise<number> {
  const session = await ort.InferenceSession.create(bytes);
  const res = await session.run({ input: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape) });
  await session.release();
  const want = model.predict(x) as tf.Tensor[];
  let err = 0;
  for (const [i, t] of want.entries()) {
    const got = res[`output${i}`]!.data as Float32Array;
    const w = t.dataSync();
    assert.equal(got.length, w.length);
    for (let j = 0; j < got.length; j++) err = Math.max(err, Math.abs(got[j]! - w[j]!));
  }
  return err;
}

describe('ONNX export op table', () => {
  it('layer kinds the zoo lacks: fp32 within 1e-4 of tfjs in onnxruntime', async () => {
    await tf.setBackend('native');
    const model = kinds();
    randomizeBn(model);
    const x = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 5);
    const err = await maxError(model, exportOnnx(model), x);
    assert.ok(err <= 1e-4, `max abs difference ${err}`);
  });

  it('int8: each layer gets the placement its entry declares, and the file runs', async () => {
    await tf.setBackend('native');
    const model = kinds();
    randomizeBn(model);
    const facts = graphFacts(model, true);
    const placement = Object.fromEntries(
      model.layers
        .filter((l) => l.getClassName() !== 'InputLayer')
        .map((l) => [l.name, int8Placement(l, facts)]),
    );
    assert.deepEqual(placement, {
      pad: 'inherit', // read by a 'same' conv: a Pad of its own
      c1: 'own',
      a1: 'own',
      dw: 'own', // a fused tanh: its batch norm is not folded in
      bn: 'own',
      mp: 'inherit',
      ap: 'own',
      mul: 'own',
      sig: 'own',
      rl: 'own',
      perm: 'inherit',
      cat: 'own',
      rs: 'inherit',
      fl: 'inherit',
      bn1: 'own',
      gap: 'inner',
      d0: 'own',
      d1: 'own',
      sum: 'own',
      d2: 'none', // linear logits that are a model output stay float
      sm: 'own',
    });
    const points = int8QuantPoints(model);
    assert.deepEqual(
      points.layers,
      Object.keys(placement).filter((l) => placement[l] === 'own' || placement[l] === 'inner'),
    );
    const x = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 6);
    const bytes = exportOnnx(model, { quant: calibrateRanges(model, [x]) });
    const err = await maxError(model, bytes, x);
    // Measured 0.16 on these inputs (the calibration batch itself; logits and softmax).
    assert.ok(Number.isFinite(err) && err < 0.5, `int8 max abs difference ${err}`);
  });

  it('an unknown layer class is named with the layer', () => {
    const x = tfl.input({ shape: [4] });
    const emb = tfl.layers.embedding({ name: 'emb', inputDim: 5, outputDim: 2 });
    emb.apply(x);
    assert.throws(() => opFor(emb), /onnx export: layer 'emb' of class Embedding is not supported/);
  });
});
