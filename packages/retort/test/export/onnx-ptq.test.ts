/**
 * Post-training int8 of an ONNX file (`quantizeOnnx`): the PyTorch-exported ResNet-20 fixture
 * calibrated on Fashion-MNIST training images agrees with its fp32 self in onnxruntime, holds int8
 * weights within the target's range and int32 biases, is ~0.28x the size, and onnxruntime fuses
 * every quantized op into its integer kernels; small hand-built graphs check Gemm/MatMul weight
 * axes, batch-norm folding and shared parameters; malformed or unsupported inputs are refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { onnx as O } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { FASHION_MNIST_DIR, loadIdxSplit } from '../../src/data/fashion-mnist.js';
import { F32, GraphBuilder, onnx } from '../../src/export/onnx/graph.js';
import { type OnnxPtqOptions, quantizeOnnx } from '../../src/export/onnx/ptq.js';
import { RetortError } from '../../src/util/errors.js';

const here = dirname(fileURLToPath(import.meta.url));
const ONNX = join(here, '..', 'fixtures', 'onnx-teacher', 'resnet20-fmnist.onnx');
const meta = JSON.parse(readFileSync(join(dirname(ONNX), 'resnet20-fmnist.json'), 'utf8')) as {
  mean: number[];
  std: number[];
};
const scratch = mkdtempSync(join(tmpdir(), 'retort-onnx-ptq-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const { INT8, INT32, UINT8 } = onnx.TensorProto.DataType;

const PX = 28 * 28;
const fp32 = readFileSync(ONNX);
const trainSplit = loadIdxSplit(FASHION_MNIST_DIR, 'train');
const testSplit = loadIdxSplit(FASHION_MNIST_DIR, 't10k');
/** Images [from, from + n) of a split, normalized as the model was trained, NCHW [n, 1, 28, 28]. */
const images = (imgs: Uint8Array, from: number, n: number) =>
  Float32Array.from(
    imgs.subarray(from * PX, (from + n) * PX),
    (v) => (v / 255 - meta.mean[0]!) / meta.std[0]!,
  );
/** 320 training images in 5 batches, the last one as an onnxruntime tensor. */
const calibration = () =>
  Array.from({ length: 5 }, (_, i) => {
    const x = images(trainSplit.images, 1000 + i * 64, 64);
    return i === 4 ? new ort.Tensor('float32', x, [64, 1, 28, 28]) : x;
  });

async function run(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const r = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, dims) });
    return r[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

function argmax(x: Float32Array, k: number): number[] {
  return Array.from({ length: x.length / k }, (_, i) => {
    let b = 0;
    for (let j = 1; j < k; j++) if (x[i * k + j]! > x[i * k + b]!) b = j;
    return b;
  });
}

/** Top-1 agreement of two models on the first `n` test images. */
async function agreement(a: Uint8Array, b: Uint8Array, n: number): Promise<number> {
  const x = images(testSplit.images, 0, n);
  const [pa, pb] = [argmax(await run(a, x, [n, 1, 28, 28]), 10), argmax(await run(b, x, [n, 1, 28, 28]), 10)];
  return pa.filter((p, i) => p === pb[i]).length / n;
}

/** Op counts of onnxruntime's optimized graph (all optimizations). */
async function optimizedOps(bytes: Uint8Array): Promise<Record<string, number>> {
  const path = join(scratch, `opt-${Math.random().toString(36).slice(2)}.onnx`);
  // Severity 3, errors only: saving an optimized NCHWc graph warns that it is machine-specific.
  const s = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    optimizedModelFilePath: path,
    logSeverityLevel: 3,
  });
  await s.release();
  const counts: Record<string, number> = {};
  for (const n of onnx.ModelProto.decode(readFileSync(path)).graph?.node ?? [])
    counts[n.opType!] = (counts[n.opType!] ?? 0) + 1;
  return counts;
}

/** The int8 weights behind each Conv/Gemm/MatMul: values, scale count and DQ axis. */
function int8Weights(bytes: Uint8Array) {
  const g = onnx.ModelProto.decode(bytes).graph!;
  const inits = new Map(g.initializer!.map((t) => [t.name!, t]));
  const producer = new Map(g.node!.map((n) => [n.output![0]!, n]));
  return g
    .node!.filter((n) => ['Conv', 'Gemm', 'MatMul'].includes(n.opType!))
    .map((n) => {
      const dq = producer.get(n.input![1]!);
      const w = dq ? inits.get(dq.input![0]!) : undefined;
      const bdq = n.input![2] ? producer.get(n.input![2]) : undefined;
      return {
        name: n.name!,
        type: w?.dataType,
        values: w ? new Int8Array(Uint8Array.from(w.rawData!).buffer) : new Int8Array(),
        scales: dq ? Number(inits.get(dq.input![1]!)!.dims![0] ?? 1) : 0,
        axis: Number(dq?.attribute?.find((a) => a.name === 'axis')?.i ?? -1),
        biasType: bdq ? inits.get(bdq.input![0]!)?.dataType : undefined,
      };
    });
}

describe('quantizeOnnx on the PyTorch ResNet-20 fixture', () => {
  let int8: Uint8Array;

  it('agrees with fp32 on >= 99% of 1000 test images, 0.25-0.3x the size, fused by onnxruntime', async () => {
    const r = await quantizeOnnx(fp32, calibration(), { name: ONNX });
    int8 = r.bytes;
    // 21 convs and the classifier; the stem conv stays float by default.
    assert.equal(r.nodes, 21);
    assert.equal(r.samples, 320);
    assert.ok(!r.quantized.includes('/conv1/Conv') && r.quantized.includes('/fc/Gemm'), r.quantized.join());
    const agree = await agreement(fp32, r.bytes, 1000);
    assert.ok(agree >= 0.99, `top-1 agreement ${agree}`);
    const ratio = r.bytes.length / fp32.length;
    assert.ok(ratio > 0.25 && ratio < 0.3, `size ratio ${ratio}`);
    const ops = await optimizedOps(r.bytes);
    assert.equal(ops['QLinearConv'], 20, JSON.stringify(ops));
    assert.equal(ops['QGemm'], 1, JSON.stringify(ops));
    assert.equal(ops['QLinearAdd'], 9, JSON.stringify(ops));
    assert.equal(ops['QLinearGlobalAveragePool'], 1, JSON.stringify(ops));
    assert.equal(ops['DequantizeLinear'] ?? 0, 0, `float round trips left: ${JSON.stringify(ops)}`);
    assert.equal((ops['Conv'] ?? 0) + (ops['FusedConv'] ?? 0), 1, 'only the stem runs float');
  });

  it('keeps the graph interface and names; int8 weights within [-63, 63] per channel, int32 biases', () => {
    const a = onnx.ModelProto.decode(fp32).graph!;
    const b = onnx.ModelProto.decode(int8).graph!;
    assert.deepEqual(
      b.input!.map((v) => v.name),
      a.input!.map((v) => v.name),
    );
    assert.deepEqual(
      b.output!.map((v) => [v.name, v.type?.tensorType?.elemType]),
      a.output!.map((v) => [v.name, F32]),
    );
    // Every original node is still there under its name.
    const names = new Set(b.node!.map((n) => n.name));
    for (const n of a.node!) assert.ok(names.has(n.name), `node ${n.name} lost`);
    const ws = int8Weights(int8).filter((w) => w.name !== '/conv1/Conv');
    assert.equal(ws.length, 21);
    for (const w of ws) {
      assert.equal(w.type, INT8, w.name);
      assert.equal(w.biasType, INT32, w.name);
      const max = w.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      // Portable: 7-bit weights, and each channel's largest weight lands on the grid's end.
      assert.equal(max, 63, `${w.name}: max |q| ${max}`);
    }
    const fc = ws.find((w) => w.name === '/fc/Gemm')!;
    // fc.weight is [10, 64] with transB = 1: output channels on axis 0.
    assert.deepEqual([fc.scales, fc.axis], [10, 0]);
    const conv = ws.find((w) => w.name === '/layer3/layer3.0/conv1/Conv')!;
    assert.deepEqual([conv.scales, conv.axis], [64, 0]);
    // Activations are uint8.
    const zps = b.initializer!.filter((t) => t.name!.startsWith('act.zp'));
    assert.ok(zps.length > 0 && zps.every((t) => t.dataType === UINT8));
  });

  it('per-tensor weights, the int8 stem and the vnni target', async () => {
    const r = await quantizeOnnx(fp32, calibration(), {
      weights: 'per-tensor',
      stem: 'int8',
      target: 'vnni',
    });
    assert.equal(r.nodes, 22);
    const ws = int8Weights(r.bytes);
    for (const w of ws) {
      assert.equal(w.scales, 1, `${w.name}: one scale`);
      assert.equal(w.axis, -1, w.name);
      assert.equal(
        w.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
        127,
        w.name,
      );
    }
    const agree = await agreement(fp32, r.bytes, 500);
    assert.ok(agree >= 0.98, `top-1 agreement ${agree}`);
    const ops = await optimizedOps(r.bytes);
    assert.equal(ops['QLinearConv'], 21, JSON.stringify(ops));
  });
});

/** A model of `build`'s nodes over input `x` [N, ...inShape] with one float output `y`. */
function model(
  build: (g: GraphBuilder) => void,
  inShape: number[],
  opts: { opset?: number; outputs?: string[] } = {},
): Uint8Array {
  const g = new GraphBuilder();
  build(g);
  const vi = (name: string, dims: (number | string)[]): O.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: F32,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
  return onnx.ModelProto.encode({
    irVersion: 7,
    opsetImport: [{ domain: '', version: opts.opset ?? 13 }],
    graph: {
      name: 't',
      node: g.nodes,
      initializer: g.inits,
      input: [vi('x', ['N', ...inShape])],
      output: (opts.outputs ?? ['y']).map((o) => ({ name: o, type: { tensorType: { elemType: F32 } } })),
    },
  }).finish();
}

const seeded = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 0.5);
const batches = (n: number, size: number) => Array.from({ length: 3 }, (_, k) => seeded(n * size, k + 1));

function maxRelErr(a: Float32Array, b: Float32Array): number {
  let err = 0;
  let range = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    range = Math.max(range, Math.abs(a[i]!));
  }
  return err / range;
}

describe('quantizeOnnx on small graphs', () => {
  it('Gemm (transB 0 and 1) and MatMul: weight axes per output channel, close to fp32', async () => {
    const bytes = model(
      (g) => {
        g.node('Gemm', ['x', g.f32('w1', seeded(8 * 6, 1), [8, 6]), g.f32('b1', seeded(6, 2), [6])], 'h');
        g.node('Relu', ['h'], 'r');
        g.node('Gemm', ['r', g.f32('w2', seeded(5 * 6, 3), [5, 6]), g.f32('b2', seeded(5, 4), [5])], 'h2', {
          transB: 1,
        });
        g.node('MatMul', ['h2', g.f32('w3', seeded(5 * 4, 5), [5, 4])], 'y');
      },
      [8],
    );
    const r = await quantizeOnnx(bytes, batches(32, 8));
    assert.equal(r.nodes, 3);
    const ws = int8Weights(r.bytes);
    assert.deepEqual(
      ws.map((w) => [w.name, w.scales, w.axis, w.biasType]),
      [
        ['h', 6, 1, INT32],
        ['h2', 5, 0, INT32],
        ['y', 4, 1, undefined],
      ],
    );
    const x = seeded(16 * 8, 9);
    const err = maxRelErr(await run(bytes, x, [16, 8]), await run(r.bytes, x, [16, 8]));
    assert.ok(err < 0.05, `relative error ${err}`);
  });

  it('folds Conv -> BatchNormalization, shares MaxPool/Flatten parameters, keeps names', async () => {
    const c = 4;
    const bytes = model(
      (g) => {
        g.node('Conv', ['x', g.f32('w', seeded(c * 2 * 9, 1), [c, 2, 3, 3])], 'conv', {
          kernel_shape: [3, 3],
          pads: [1, 1, 1, 1],
        });
        g.node(
          'BatchNormalization',
          [
            'conv',
            g.f32('gamma', Float32Array.of(1, 0.5, 2, 1.5), [c]),
            g.f32('beta', Float32Array.of(0.1, -0.2, 0.3, 0), [c]),
            g.f32('mean', Float32Array.of(0.05, 0, -0.1, 0.2), [c]),
            g.f32('var', Float32Array.of(1, 2, 0.5, 1), [c]),
          ],
          'bn',
          { epsilon: 1e-5 },
        );
        g.node('Relu', ['bn'], 'relu');
        g.node('MaxPool', ['relu'], 'pool', { kernel_shape: [2, 2], strides: [2, 2] });
        g.node('Flatten', ['pool'], 'flat', { axis: 1 });
        g.node('Gemm', ['flat', g.f32('fc', seeded(c * 16 * 3, 7), [c * 16, 3])], 'y');
      },
      [2, 8, 8],
    );
    // The stem would stay float: quantize it here to exercise the fold.
    const r = await quantizeOnnx(bytes, batches(16, 2 * 64), { stem: 'int8' });
    assert.equal(r.foldedBatchNorms, 1);
    const m = onnx.ModelProto.decode(r.bytes).graph!;
    const byOut = new Map(m.node!.map((n) => [n.output![0]!, n]));
    assert.ok(!m.node!.some((n) => n.opType === 'BatchNormalization'));
    assert.equal(byOut.get('bn')!.opType, 'Conv', 'the conv writes the BN output name');
    assert.ok(!m.initializer!.some((t) => ['gamma', 'beta', 'mean', 'var', 'w'].includes(t.name!)));
    // Q -> DQ after the ReLU (zero point 0), and MaxPool and Flatten reuse its parameters.
    const qOf = (t: string) => m.node!.find((n) => n.opType === 'QuantizeLinear' && n.input![0] === t)!;
    const relu = qOf('relu');
    const zp = m.initializer!.find((t) => t.name === relu.input![2])!;
    assert.equal(zp.rawData![0], 0);
    for (const t of ['pool', 'flat']) assert.deepEqual(qOf(t).input!.slice(1), relu.input!.slice(1), t);
    assert.equal(qOf('bn'), undefined, 'no pair between the conv and its ReLU');
    const x = seeded(8 * 2 * 64, 11);
    const err = maxRelErr(await run(bytes, x, [8, 2, 8, 8]), await run(r.bytes, x, [8, 2, 8, 8]));
    assert.ok(err < 0.05, `relative error ${err}`);
    const ops = await optimizedOps(r.bytes);
    assert.equal(ops['QLinearConv'], 1, JSON.stringify(ops));
    assert.equal(ops['QGemm'], 1, JSON.stringify(ops));
  });
});

describe('quantizeOnnx refusals', () => {
  const fails = async (p: Promise<unknown>, re: RegExp) => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof RetortError, String(e));
      assert.match(e.message, re);
      return true;
    });
  };
  const gemm = (opset = 13) =>
    model(
      (g) => {
        g.node('Gemm', ['x', g.f32('w', seeded(12, 1), [4, 3])], 'y');
      },
      [4],
      { opset },
    );
  const calib = batches(8, 4);

  it('not an ONNX file, no graph, old opset', async () => {
    await fails(
      quantizeOnnx(new TextEncoder().encode('{"not": "onnx"}'), calib, { name: 'model.json' }),
      /quantizeOnnx model\.json: (not an ONNX model|the file holds no graph)/,
    );
    await fails(quantizeOnnx(new Uint8Array(), calib), /holds no graph/);
    await fails(quantizeOnnx(gemm(11), calib), /opset 11: .*needs opset 13/);
  });

  it('dynamic weights name the node and op; exclude keeps such a node float', async () => {
    const bytes = onnx.ModelProto.encode({
      irVersion: 7,
      opsetImport: [{ version: 13 }],
      graph: {
        node: [{ opType: 'MatMul', name: 'attn', input: ['x', 'x'], output: ['y'] }],
        input: [
          {
            name: 'x',
            type: { tensorType: { elemType: F32, shape: { dim: [{ dimValue: 4 }, { dimValue: 4 }] } } },
          },
        ],
        output: [{ name: 'y', type: { tensorType: { elemType: F32 } } }],
      },
    }).finish();
    await fails(
      quantizeOnnx(bytes, calib),
      /MatMul 'attn': weight 'x' is a graph input.*exclude: \['attn'\]/,
    );
    await fails(quantizeOnnx(bytes, calib, { exclude: ['attn'] }), /nothing to quantize/);
    await fails(quantizeOnnx(bytes, calib, { exclude: ['nope'] }), /exclude: no node is named 'nope'/);
  });

  it('already quantized models, bad options, bad calibration batches', async () => {
    const q = await quantizeOnnx(gemm(), calib);
    await fails(quantizeOnnx(q.bytes, calib), /already quantized/);
    await fails(
      quantizeOnnx(gemm(), calib, { weights: 'per-row' } as unknown as OnnxPtqOptions),
      /weights must be per-channel or per-tensor/,
    );
    await fails(
      quantizeOnnx(gemm(), calib, { target: 'avx2' } as unknown as OnnxPtqOptions),
      /target must be portable, vnni, arm64/,
    );
    await fails(quantizeOnnx(gemm(), []), /no calibration batches/);
    await fails(
      quantizeOnnx(gemm(), [new Float32Array(6)]),
      /calibration batch 0: 6 values are not whole samples of \[4\]/,
    );
    await fails(
      quantizeOnnx(gemm(), [new Float32Array(8), Float32Array.of(1, 2, 3, Number.NaN)]),
      /non-finite/,
    );
  });
});
