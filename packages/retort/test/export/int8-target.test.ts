/**
 * Int8 export targets: the `portable` file is right on every x86-64 CPU by construction, whatever
 * CPU runs this test. Two checks that do not depend on the machine: every int8 weight initializer
 * of every export lies in [-63, 63], and a reference of onnxruntime's non-VNNI u8 x s8 pair sums
 * (measure/int8-saturation.ts), run on real Fashion-MNIST activations, finds no saturating pair,
 * while the full 8-bit `vnni` files of the same models do saturate (the Zen 3 failure).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import onnxProto from 'onnx-proto';
import { parseCpuinfo } from 'retort-kd-native';
import { quantizeInt8 } from '../../src/compress/quantize/qparams.js';
import { FASHION_MNIST_DIR, loadIdxSplit } from '../../src/data/fashion-mnist.js';
import {
  calibrateRanges,
  exportOnnx,
  type Int8Target,
  targetNotice,
  WEIGHT_QMAX,
  weightQmax,
} from '../../src/export/onnx.js';
import { int8Saturation, pairBound, pairSaturation } from '../../src/measure/int8-saturation.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema } from '../../src/run/compress.js';
import { randomizeBn } from './onnx-check.js';

const { onnx } = onnxProto;
const { INT8 } = onnx.TensorProto.DataType;

const MODELS: [string, Record<string, number>][] = [
  ['resnet8', {}],
  ['lightnn', {}],
  ['mobilenetv2', { widthMult: 0.5 }],
];

/** The first `n` Fashion-MNIST test images, normalised as the data pipeline does (NHWC). */
function realImages(n: number): Float32Array {
  const t = loadIdxSplit(FASHION_MNIST_DIR, 't10k');
  return Float32Array.from(t.images.subarray(0, n * 784), (v) => (v / 255 - 0.286) / 0.353);
}

function zoo(name: string, options: Record<string, number>): tfl.LayersModel {
  const m = buildModel(name, { ...options, inputShape: [28, 28, 1], numClasses: 10, seed: 3 });
  randomizeBn(m);
  return m;
}

type Mode = 'static' | 'dynamic';
function exportAs(model: tfl.LayersModel, mode: Mode, target: Int8Target | undefined, xs: Float32Array) {
  const base = { weights: 'per-channel' as const, ...(target ? { target } : {}) };
  if (mode === 'dynamic') return exportOnnx(model, { dynamic: { minChannels: 1 }, ...base });
  const x = tf.tensor4d(xs, [xs.length / 784, 28, 28, 1]);
  const quant = calibrateRanges(model, [x]);
  x.dispose();
  return exportOnnx(model, { quant, ...base });
}

/** Largest |v| (spreading a big array into Math.max overflows the stack). */
function maxAbs(values: Int8Array): number {
  let m = 0;
  for (const v of values) m = Math.max(m, Math.abs(v));
  return m;
}

/** Every int8 initializer that a DequantizeLinear or MatMulInteger reads as weights: its values. */
function int8Weights(bytes: Uint8Array): { name: string; values: Int8Array }[] {
  const g = onnx.ModelProto.decode(bytes).graph!;
  return g
    .initializer!.filter((t) => t.dataType === INT8 && (t.dims ?? []).length >= 2)
    .map((t) => ({
      name: t.name!,
      values: new Int8Array(t.rawData!.buffer, t.rawData!.byteOffset, t.rawData!.byteLength),
    }));
}

describe('int8 targets: weight ranges', () => {
  it('quantizeInt8: the target grid, symmetric, scale = max |w| / qmax', () => {
    const w = Float32Array.of(-2, -1.2, 0, 0.7, 2); // no value lands on a rounding tie
    for (const [target, qmax] of Object.entries(WEIGHT_QMAX)) {
      const { q, scales } = quantizeInt8(w, [5], 0, false, qmax);
      assert.equal(scales[0], Math.fround(2 / qmax), target);
      assert.deepEqual(
        [...q],
        [...w].map((v) => Math.round((v / 2) * qmax)),
        target,
      );
    }
    assert.throws(
      () => quantizeInt8(w, [5], 0, false, 128),
      /qmax must be an integer in \[1, 127\], got 128/,
    );
    assert.equal(weightQmax(undefined), 63, 'portable is the default');
    assert.throws(() => weightQmax('avx2' as Int8Target), /target must be portable, vnni, arm64, got 'avx2'/);
  });

  const xs = realImages(32);
  for (const [name, options] of MODELS)
    for (const mode of ['static', 'dynamic'] as const)
      it(`${name} ${mode}: portable (the default) in [-63, 63] and using it; vnni reaches 127`, async () => {
        await tf.setBackend('native');
        const model = zoo(name, options);
        const byDefault = int8Weights(exportAs(model, mode, undefined, xs));
        const portable = int8Weights(exportAs(model, mode, 'portable', xs));
        assert.ok(portable.length >= 2, `${name}: ${portable.length} int8 weights`);
        assert.deepEqual(byDefault, portable, 'no target = portable');
        for (const { name: w, values } of portable) {
          const m = maxAbs(values);
          assert.ok(m <= 63, `${w}: |q| up to ${m}`);
          assert.equal(m, 63, `${w}: the largest weight of the tensor maps to 63`);
        }
        const vnni = int8Weights(exportAs(model, mode, 'vnni', xs));
        assert.equal(vnni.length, portable.length);
        for (const { name: w, values } of vnni) assert.equal(maxAbs(values), 127, w);
        const arm = int8Weights(exportAs(model, mode, 'arm64', xs));
        assert.deepEqual(arm, vnni, 'arm64 has the full 8-bit grid');
      });
});

describe('int8 targets: the non-VNNI pair-sum reference', () => {
  it('pairSaturation counts int16 overflows of a[k]w[k] + a[k+1]w[k+1] (k even), per segment', () => {
    // rows [255, 255, 255, 0] and [10, 20, 0, 255]; two outputs: w[:, 0] = 127s, w[:, 1] = 63s.
    const a = Uint8Array.of(255, 255, 255, 0, 10, 20, 0, 255);
    const w = Int8Array.of(127, 63, 127, 63, 127, 63, 127, 63);
    const s = pairSaturation(a, 2, 4, w, 2);
    // Row 0: pair (0,1) 64770 (saturates) and 32130; pair (2,3) 32385 and 16065. Row 1: 3810, 1890;
    // 32385, 16065.
    assert.deepEqual(s, { pairs: 8, saturated: 1, maxAbsPairSum: 64770 });
    // Negative side: -128 * 255 * 2 = -65280 < -32768.
    assert.equal(pairSaturation(Uint8Array.of(255, 255), 1, 2, Int8Array.of(-128, -128), 1).saturated, 1);
    assert.equal(pairSaturation(Uint8Array.of(255, 255), 1, 2, Int8Array.of(-64, -64), 1).saturated, 0);
    // Segments of 1 (odd tails): no pairs at all.
    assert.equal(pairSaturation(a, 2, 4, w, 2, 1).pairs, 0);
    // Pairs never straddle a segment: [255 | 255] x [127 | 127] with segment 1 cannot saturate.
    assert.equal(pairBound(Int8Array.of(127, 127), 2, 1), 255 * 254);
    assert.equal(pairBound(Int8Array.of(127, 127), 2, 1, 1), 0);
    assert.throws(() => pairSaturation(a, 3, 4, w, 2), /a has 8 bytes, expected 3x4/);
  });

  const xs = realImages(16);
  for (const [name, options] of MODELS)
    for (const mode of ['static', 'dynamic'] as const)
      it(`${name} ${mode}: portable has 0 saturating pairs on real images; vnni saturates`, async () => {
        await tf.setBackend('native');
        const model = zoo(name, options);
        const shape = [16, 28, 28, 1];
        const portable = await int8Saturation(exportAs(model, mode, 'portable', xs), xs, shape);
        assert.ok(portable.length >= 2, `${name}: ${portable.length} integer layers found`);
        for (const l of portable) {
          assert.equal(l.saturated, 0, `${l.node}: ${l.saturated} of ${l.pairs} pairs`);
          assert.ok(l.bound <= 2 * 255 * 63 && l.maxAbsPairSum <= l.bound, `${l.node}: bound ${l.bound}`);
          // A one-channel conv read per kernel position has no pairs (segment 1).
          assert.ok(l.rows >= 16 && (l.pairs > 0 || l.segment === 1), `${l.node}: ${l.pairs} pairs`);
        }
        const vnni = await int8Saturation(exportAs(model, mode, 'vnni', xs), xs, shape);
        assert.deepEqual(
          vnni.map((l) => l.node),
          portable.map((l) => l.node),
        );
        const hit = vnni.filter((l) => l.saturated > 0);
        // The convs are where the Zen 3 failure came from; full 8-bit weights saturate there.
        assert.ok(
          hit.some((l) => l.op !== 'Gemm' && !l.node.startsWith('fc') && !l.node.startsWith('classifier')),
          `${name}: saturating layers ${hit.map((l) => `${l.node} ${l.saturated}`).join(', ')}`,
        );
      });
});

describe('int8 targets: what export says about this CPU', () => {
  const zen3 = parseCpuinfo(
    'model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_1 sse4_2 ssse3 cx16 lahf_lm popcnt avx avx2 fma bmi1 bmi2 f16c abm movbe xsave\n',
    'x64',
  );
  const zen5 = parseCpuinfo(
    `model name\t: AMD EPYC\nflags\t\t: ${[...zen3.flags].join(' ')} avx512f avx512bw avx512cd avx512dq avx512vl avx512_vnni\n`,
    'x64',
  );
  it('names the target, its range and the CPU; warns for vnni/arm64 files on a CPU without VNNI', () => {
    const p = targetNotice('portable', zen3);
    assert.match(
      p.info,
      /int8 target portable \(weights in \[-63, 63\]\); this CPU: AMD EPYC 7B13 \(avx2 yes, avx512f no, vnni no\)/,
    );
    assert.equal(p.warning, undefined);
    assert.match(targetNotice('vnni', zen3).warning ?? '', /without VNNI.*saturate.*use target 'portable'/);
    assert.match(targetNotice('arm64', zen3).warning ?? '', /wrong on this CPU \(no VNNI\)/);
    assert.equal(targetNotice('vnni', zen5).warning, undefined);
    assert.match(targetNotice('vnni', zen5).info, /\[-127, 127\].*avx512f yes, vnni yes/);
  });
});

describe('int8 targets: config and CLI', () => {
  it('pipeline quantize.target: portable by default; an unknown target names the valid ones', () => {
    const base = { name: 'p', student: { run: 'r' }, export: ['onnx-int8'] };
    assert.equal(pipelineSchema.parse({ ...base, quantize: {} }).quantize?.target, 'portable');
    assert.equal(pipelineSchema.parse({ ...base, quantize: { target: 'vnni' } }).quantize?.target, 'vnni');
    const bad = pipelineSchema.safeParse({ ...base, quantize: { target: 'avx2' } });
    assert.equal(bad.success, false);
    assert.match(JSON.stringify(bad.error?.issues), /portable.*vnni.*arm64/);
  });

  it('retort export --int8-target: checked before any work; int8 formats only', () => {
    const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [bin, 'export', '/nonexistent', ...args], {
        encoding: 'utf8',
        env: { ...process.env, RETORT_QUIET: '1' },
      });
    const bad = run('--format', 'onnx-int8', '--int8-target', 'avx2');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--int8-target must be portable, vnni, arm64, got 'avx2'/);
    const fp32 = run('--format', 'onnx', '--int8-target', 'vnni');
    assert.equal(fp32.status, 1);
    assert.match(
      fp32.stderr,
      /--int8-target applies to --format onnx-int8 and onnx-int8-dynamic only, not 'onnx'/,
    );
    const ok = run('--format', 'onnx-int8-dynamic', '--int8-target', 'arm64');
    assert.equal(ok.status, 1);
    assert.match(ok.stderr, /nonexistent/, 'past the option checks: fails on the missing run folder');
  });
});
