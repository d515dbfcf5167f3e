/**
 * Dynamic int8 ONNX export (`exportOnnx(model, { dynamic })`) checked in onnxruntime-node: zoo
 * models agree with fp32 tfjs with no calibration data; weights are int8 initializers read by
 * MatMulInteger, per channel or per tensor, on the layers `dynamicPlan` picks; onnxruntime fuses
 * every quantized layer into DynamicQuantizeMatMul / MatMulIntegerToFloat; the im2col geometry
 * (padding, strides, dilation, folded ZeroPadding2D) matches an emulation of the quantization in
 * tfjs to float rounding; clear errors for bad options and unsupported layers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { quantizeInt8 } from '../../src/compress/quantize/qparams.js';
import { dynamicPlan, exportOnnx, WEIGHT_QMAX } from '../../src/export/onnx.js';
import { buildModel } from '../../src/models/index.js';
import { agreement, randomizeBn } from './onnx-check.js';

const { onnx } = onnxProto;
const { INT8, FLOAT } = onnx.TensorProto.DataType;
const scratch = mkdtempSync(join(tmpdir(), 'retort-onnx-dyn-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const SHAPE = [28, 28, 1] as const;
const ZOO: [string, Record<string, number>][] = [
  ['resnet8', {}],
  ['lightnn', {}],
  ['mobilenetv2', { widthMult: 0.5 }],
  ['shufflenetv2', { netSize: 0.5 }], // channel split/shuffle (Slice, Reshape, Permute) on NHWC
];

function zooModel(name: string, options: Record<string, number>): tfl.LayersModel {
  const model = buildModel(name, { ...options, inputShape: [...SHAPE], numClasses: 10, seed: 3 });
  randomizeBn(model);
  return model;
}

/** Every MatMulInteger of a ModelProto: its layer, weight type and dims, and its scale count. */
function quantizedLayers(bytes: Uint8Array) {
  const g = onnx.ModelProto.decode(bytes).graph!;
  const inits = new Map(g.initializer!.map((t) => [t.name!, t]));
  return g
    .node!.filter((n) => n.opType === 'MatMulInteger')
    .map((n) => {
      const w = inits.get(n.input![1]!)!;
      const layer = n.name!.replace(/\.acc$/, '');
      const scale = inits.get(`${layer}.W.scale`)!;
      return {
        layer,
        type: w.dataType!,
        dims: w.dims!.map(Number),
        scales: scale.dims!.reduce((a: number, d) => a * Number(d), 1),
        zeroPoint: inits.get(n.input![3]!)!,
      };
    });
}

/** Layers dynamicPlan quantizes: every Dense, and the convs it accepts. */
function planned(model: tfl.LayersModel, minChannels?: number): string[] {
  return model.layers
    .filter((l) => {
      const cls = l.getClassName();
      if (cls === 'Dense') return true;
      if (cls !== 'Conv2D' && cls !== 'DepthwiseConv2D') return false;
      const k = l.getWeights()[0]!.shape as [number, number, number, number];
      const cfg = l.getConfig();
      const strides = cfg['strides'] as [number, number];
      const shape = {
        depthwise: cls === 'DepthwiseConv2D',
        inChannels: k[2],
        outChannels: cls === 'Conv2D' ? k[3] : k[2] * k[3],
        kernel: [k[0], k[1]] as [number, number],
        strides,
      };
      return dynamicPlan(shape, minChannels === undefined ? {} : { minChannels });
    })
    .map((l) => l.name);
}

describe('ONNX dynamic int8 export in onnxruntime', () => {
  for (const [name, options] of ZOO) {
    it(`${name}: no calibration; top-1 agrees with fp32 tfjs, logits within 5% of their range`, async () => {
      await tf.setBackend('native');
      const model = zooModel(name, options);
      const bytes = exportOnnx(model, { dynamic: true });
      const x = tf.randomNormal([64, ...SHAPE], 0, 1, 'float32', 9);
      const { agree, relErr } = await agreement(model, bytes, x);
      // Measured on these 64 inputs: 1.000 for the BN models, 0.969 for LightNN (near-tie logits).
      const floor = name === 'lightnn' ? 0.92 : 0.98;
      assert.ok(agree >= floor, `${name}: top-1 agreement ${agree}`);
      assert.ok(relErr <= 0.05, `${name}: max logit error ${relErr} of the logit range`);
      // Per-run scales: an input 20x larger than any seen before is handled as well (no ranges).
      const big = tf.mul(x, 20);
      const scaled = await agreement(model, bytes, big);
      assert.ok(scaled.agree >= floor, `${name} x20: top-1 agreement ${scaled.agree}`);
      assert.ok(scaled.relErr <= 0.05, `${name} x20: max logit error ${scaled.relErr}`);
      tf.dispose([x, big]);
    });
  }

  for (const [name, options] of ZOO) {
    it(`${name}: int8 weights on the planned layers, per channel or per tensor, zero point 0`, () => {
      const model = zooModel(name, options);
      const want = planned(model);
      assert.ok(want.length >= 2, `${name}: plans ${want.join(', ')}`);
      const perChannel = quantizedLayers(exportOnnx(model, { dynamic: true }));
      assert.deepEqual(perChannel.map((q) => q.layer).sort(), [...want].sort());
      for (const q of perChannel) {
        assert.equal(q.type, INT8, `${q.layer}: weight type`);
        assert.equal(q.scales, q.dims[1], `${q.layer}: one scale per output channel`);
        assert.equal(q.zeroPoint.dataType, INT8, `${q.layer}: zero point type`);
        assert.deepEqual([...q.zeroPoint.rawData!], [0], `${q.layer}: one zero point, 0`);
      }
      const bytes = exportOnnx(model, { dynamic: true, weights: 'per-tensor' });
      for (const q of quantizedLayers(bytes)) assert.equal(q.scales, 1, `${q.layer}: one scale`);
      // The float weights of the quantized layers are gone; the file is much smaller.
      const floats = onnx.ModelProto.decode(bytes)
        .graph!.initializer!.filter((t) => t.dataType === FLOAT)
        .map((t) => t.name!);
      for (const l of want) assert.ok(!floats.includes(`${l}.W`), `${l}: no float weight left`);
      const fp32 = exportOnnx(model).length;
      assert.ok(bytes.length < fp32 / 2, `${name}: dynamic file ${bytes.length} B vs fp32 ${fp32} B`);
    });
  }

  it('resnet8: the plan keeps small convs float; minChannels 1 quantizes every conv', async () => {
    await tf.setBackend('native');
    const model = zooModel('resnet8', {});
    const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D').map((l) => l.name);
    const byDefault = planned(model);
    assert.ok(!byDefault.includes('conv1'), 'the 1-channel stem stays float');
    assert.ok(byDefault.includes('layer3.0.conv2'), '64 -> 64 is quantized');
    const all = exportOnnx(model, { dynamic: { minChannels: 1 } });
    assert.deepEqual(
      quantizedLayers(all)
        .map((q) => q.layer)
        .sort(),
      [...convs, 'fc'].sort(),
    );
    const x = tf.randomNormal([64, ...SHAPE], 0, 1, 'float32', 11);
    const { agree, relErr } = await agreement(model, all, x);
    assert.ok(agree >= 0.98 && relErr <= 0.05, `minChannels 1: agreement ${agree}, error ${relErr}`);
    tf.dispose(x);
  });

  it('each quantized layer runs fused (DynamicQuantizeMatMul / MatMulIntegerToFloat), no ConvInteger', async () => {
    for (const [name, options] of ZOO) {
      const model = zooModel(name, options);
      const bytes = exportOnnx(model, { dynamic: true });
      const path = join(scratch, `${name}.dynamic.opt.onnx`);
      const session = await ort.InferenceSession.create(bytes, {
        graphOptimizationLevel: 'all',
        optimizedModelFilePath: path,
        logSeverityLevel: 3,
      });
      await session.release();
      const ops = onnx.ModelProto.decode(readFileSync(path)).graph!.node!.map((n) => n.opType!);
      const fused = ops.filter((o) => o === 'DynamicQuantizeMatMul' || o === 'MatMulIntegerToFloat').length;
      assert.equal(fused, planned(model).length, `${name}: ${ops.join(' ')}`);
      for (const op of ['MatMulInteger', 'ConvInteger', 'Cast', 'DequantizeLinear'])
        assert.ok(!ops.includes(op), `${name}: ${op} left in ${ops.join(' ')}`);
    }
  });
});

/**
 * tfjs outputs of `model` with the dynamic quantization emulated: the input quantized as
 * DynamicQuantizeLinear does (uint8, scale = (max(0, hi) - min(0, lo)) / 255) and the conv weights
 * as the exporter does. Matches onnxruntime's integer arithmetic up to float rounding.
 */
function emulated(model: tfl.LayersModel, conv: tfl.layers.Layer, x: tf.Tensor, perChannel: boolean) {
  const [kernel, bias] = conv.getWeights() as [tf.Tensor, tf.Tensor];
  const dims = kernel.shape;
  const { q, scales } = quantizeInt8(
    kernel.dataSync() as Float32Array,
    dims,
    3,
    perChannel,
    WEIGHT_QMAX.portable,
  );
  const o = dims[3]!;
  const wq = Float32Array.from(q, (v, i) => v * scales[perChannel ? i % o : 0]!);
  const xs = x.dataSync();
  const lo = Math.min(0, ...xs);
  const hi = Math.max(0, ...xs);
  const s = (hi - lo) / 255;
  const zp = Math.min(255, Math.max(0, Math.round(-lo / s)));
  const xq = Float32Array.from(xs, (v) => (Math.min(255, Math.max(0, Math.round(v / s) + zp)) - zp) * s);
  conv.setWeights([tf.tensor(wq, dims), bias]);
  const y = (model.predict(tf.tensor(xq, x.shape)) as tf.Tensor).dataSync();
  conv.setWeights([kernel, bias]);
  return y;
}

describe('ONNX dynamic int8 conv geometry (im2col) against an emulation in tfjs', () => {
  const cases: [
    string,
    [number, number, number],
    Record<string, unknown>,
    [number, number, number, number]?,
  ][] = [
    ['3x3 stride 2 same, odd size', [9, 9, 4], { kernelSize: 3, strides: 2, padding: 'same' }],
    [
      '3x3 stride 2 same, even size (extra pixel after)',
      [8, 8, 4],
      { kernelSize: 3, strides: 2, padding: 'same' },
    ],
    ['3x3 dilation 2 same', [9, 7, 4], { kernelSize: 3, dilationRate: 2, padding: 'same' }],
    ['5x3 stride [2, 1] valid', [9, 8, 4], { kernelSize: [5, 3], strides: [2, 1], padding: 'valid' }],
    ['1x1 stride 2', [7, 7, 4], { kernelSize: 1, strides: 2, padding: 'valid' }],
    ['1x1 stride 1', [5, 5, 4], { kernelSize: 1, padding: 'valid' }],
    [
      'folded ZeroPadding2D + 3x3 stride 2 valid',
      [8, 8, 4],
      { kernelSize: 3, strides: 2, padding: 'valid' },
      [1, 1, 1, 1],
    ],
  ];
  for (const [label, shape, cfg, zeroPad] of cases) {
    for (const weights of ['per-channel', 'per-tensor'] as const) {
      it(`${label}, ${weights}`, async () => {
        await tf.setBackend('native');
        const input = tfl.input({ shape });
        let h = input;
        if (zeroPad)
          h = tfl.layers
            .zeroPadding2d({
              padding: [
                [zeroPad[0], zeroPad[2]],
                [zeroPad[1], zeroPad[3]],
              ],
            })
            .apply(h) as tfl.SymbolicTensor;
        const conv = tfl.layers.conv2d({
          ...cfg,
          filters: 6,
          activation: 'relu',
          biasInitializer: 'randomNormal',
          kernelInitializer: tfl.initializers.randomNormal({ seed: 4 }),
        } as Parameters<typeof tfl.layers.conv2d>[0]);
        const model = tfl.model({ inputs: input, outputs: conv.apply(h) as tfl.SymbolicTensor });
        const bytes = exportOnnx(model, { dynamic: { minChannels: 1 }, weights });
        const ops = onnx.ModelProto.decode(bytes).graph!.node!.map((n) => n.opType!);
        assert.ok(ops.includes('MatMulInteger') && !ops.includes('Conv'), ops.join(' '));
        assert.equal(ops.includes('Pad'), zeroPad !== undefined || cfg['padding'] === 'same', 'one Pad');
        const x = tf.randomNormal([3, ...shape], 0.3, 1, 'float32', 5);
        const want = emulated(model, conv, x, weights === 'per-channel');
        const session = await ort.InferenceSession.create(bytes);
        const res = await session.run({
          input: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape),
        });
        await session.release();
        const got = res['output']!.data as Float32Array;
        assert.deepEqual(
          res['output']!.dims,
          (model.outputs[0]!.shape as number[]).map((d) => d ?? 3),
        );
        const range = Math.max(...want) - Math.min(...want);
        for (let i = 0; i < got.length; i++)
          assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-4 * range, `at ${i}: ${got[i]} vs ${want[i]}`);
      });
    }
  }
});

describe('ONNX dynamic int8 export: errors', () => {
  it('static and dynamic together, and a bad minChannels, are refused', () => {
    const model = buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    const quant = { ranges: new Map(), input: [0, 1] as const };
    assert.throws(() => exportOnnx(model, { quant, dynamic: true }), /give quant \(static int8\) or dynamic/);
    assert.throws(
      () => exportOnnx(model, { dynamic: { minChannels: 0 } }),
      /dynamic.minChannels must be a positive integer, got 0/,
    );
  });

  it('an unsupported layer is named with its class', () => {
    const x = tfl.input({ shape: [4] });
    const y = tfl.layers.embedding({ name: 'emb', inputDim: 5, outputDim: 2 }).apply(x) as tfl.SymbolicTensor;
    assert.throws(
      () => exportOnnx(tfl.model({ inputs: x, outputs: y }), { dynamic: true }),
      /layer 'emb' of class Embedding is not supported/,
    );
  });

  it('retort export: --format lists onnx-int8-dynamic; --weights is accepted with it', () => {
    const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [bin, 'export', '/nonexistent', ...args], {
        encoding: 'utf8',
        env: { ...process.env, RETORT_QUIET: '1' },
      });
    const bad = run('--format', 'onnx-int9');
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr,
      /--format must be onnx, onnx-int8, onnx-int8-dynamic, onnx-fp16, tfjs, tfjs-uint8, tfjs-uint16, tfjs-fp16 or rtz, got 'onnx-int9'/,
    );
    // Past the option checks: it fails on the missing run folder, not on --weights.
    const ok = run('--format', 'onnx-int8-dynamic', '--weights', 'per-tensor');
    assert.equal(ok.status, 1);
    assert.doesNotMatch(ok.stderr, /--weights/);
    assert.match(ok.stderr, /nonexistent/);
  });
});
