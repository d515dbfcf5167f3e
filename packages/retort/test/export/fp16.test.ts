/**
 * fp16 exports: the float16 encoder against every half value and tfjs's own decoder; tfjs-fp16
 * (float16 in tfjs's weights manifest) loads back through tf.loadLayersModel with every weight the
 * fp16 rounding of the original and half the shard bytes; onnx-fp16 (FLOAT16 initializers cast to
 * float) runs in onnxruntime with logits within fp16 tolerance at about half the file size; and the
 * pipeline exports both and fails its check past check.fp16MaxRelDiff.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { dataSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { float16Bits, toFloat16 } from '../../src/export/float16.js';
import { exportOnnx } from '../../src/export/onnx.js';
import { exportTfjs, loadTfjs, WEIGHTS_FILE } from '../../src/export/tfjs.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline, type StageReport } from '../../src/run/compress.js';
import { perturb } from '../models/weights.js';
import { randomizeBn } from './onnx-check.js';

const { onnx } = onnxProto;
const scratch = mkdtempSync(join(tmpdir(), 'retort-fp16-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The value of a float16 bit pattern, decoded from the IEEE 754 definition (the reference here). */
function float16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Largest |a - b| over the largest |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

describe('float16 encoding', () => {
  it('every half value round-trips; tfjs decodes our codes to the same values; ties go to even', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const finite = Array.from(all).filter((h) => ((h >>> 10) & 0x1f) !== 31);
    for (const h of finite) assert.equal(float16Bits(float16Value(h)), h, `0x${h.toString(16)}`);
    const [decoded] = Object.values(
      tf.io.decodeWeights(new Uint8Array(all.buffer).buffer, [
        { name: 'w', shape: [65536], dtype: 'float32', quantization: { dtype: 'float16' } },
      ]),
    );
    const d = decoded!.dataSync();
    for (const h of finite) assert.equal(d[h], Math.fround(float16Value(h)), `0x${h.toString(16)}`);
    assert.equal(float16Bits(1 + 2 ** -11), 0x3c00, 'tie between 1 and 1 + 2^-10: even');
    assert.equal(float16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(float16Bits(2 ** -25), 0, 'half the smallest subnormal: to 0 (even)');
    assert.equal(float16Bits(3 * 2 ** -25), 2, 'subnormal tie: to even');
    assert.equal(float16Bits(-0), 0x8000);
    assert.equal(float16Bits(65519), 0x7bff, 'rounds down to 65504');
    assert.equal(float16Bits(65520), 0x7c00, 'rounds up to Infinity');
    assert.throws(
      () => toFloat16(Float32Array.of(1, 70000), "weight 'w'"),
      /weight 'w' holds 70000 at index 1/,
    );
    // Random values: within half a unit in the last place (2^-11 relative).
    const r = tf.randomNormal([10000], 0, 3, 'float32', 1).dataSync();
    for (const v of r)
      assert.ok(Math.abs(float16Value(float16Bits(v)) - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25);
  });
});

describe('fp16 exports', () => {
  it('tfjs-fp16: loads with tf.loadLayersModel from the files, fp16-rounded weights, half the shard', async () => {
    await tf.setBackend('native');
    const model = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
    perturb(model);
    const fp32Dir = join(scratch, 'tfjs');
    const dir = join(scratch, 'tfjs-fp16');
    await exportTfjs(model, fp32Dir);
    await exportTfjs(model, dir, { quantize: 'float16' });
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const specs = json.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
    assert.ok(specs.every((s) => s.quantization?.dtype === 'float16'));
    const half = statSync(join(dir, WEIGHTS_FILE)).size;
    assert.equal(2 * half, statSync(join(fp32Dir, WEIGHTS_FILE)).size);
    const back = await loadTfjs(dir);
    const original = model.weights.map((w) => w.read().dataSync() as Float32Array);
    back.weights.forEach((w, i) => {
      const want = Float32Array.from(toFloat16(original[i]!, w.name), float16Value);
      assert.deepEqual(Array.from(w.read().dataSync()), Array.from(want), w.name);
    });
    const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 2);
    const err = relErr((back.predict(x) as tf.Tensor).dataSync(), (model.predict(x) as tf.Tensor).dataSync());
    assert.ok(err > 0 && err < 1e-2, `relative logit error ${err}`);
  });

  it('onnx-fp16: FLOAT16 initializers cast to float run in onnxruntime within tolerance, ~half the bytes', async () => {
    await tf.setBackend('native');
    const model = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10, seed: 3 });
    perturb(model);
    randomizeBn(model);
    const fp32 = exportOnnx(model);
    const fp16 = exportOnnx(model, { fp16: true });
    const ratio = fp16.length / fp32.length;
    assert.ok(ratio > 0.5 && ratio < 0.55, `fp16 / fp32 bytes ${ratio}`);
    const g = onnx.ModelProto.decode(fp16).graph!;
    const inits = g.initializer!;
    const types = new Set(inits.map((t) => t.dataType));
    assert.ok(!types.has(onnx.TensorProto.DataType.FLOAT), 'no float initializer left');
    const casts = g.node!.filter((n) => n.opType === 'Cast');
    assert.equal(casts.length, inits.filter((t) => t.dataType === onnx.TensorProto.DataType.FLOAT16).length);
    const x = tf.randomNormal([16, 28, 28, 1], 0, 1, 'float32', 4);
    const session = await ort.InferenceSession.create(fp16);
    const res = await session.run({
      input: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape),
    });
    await session.release();
    const got = res['output']!.data as Float32Array;
    const want = (model.predict(x) as tf.Tensor).dataSync();
    const err = relErr(got, want);
    assert.ok(err > 0 && err < 1e-2, `relative logit error ${err}`);
    assert.throws(
      () => exportOnnx(model, { fp16: true, dynamic: true }),
      /fp16 weights are not combined with int8/,
    );
  });

  it('the pipeline exports both, measures them, and fails past check.fp16MaxRelDiff', async () => {
    await tf.setBackend('native');
    const data = buildData(
      dataSchema.parse({ dataset: 'fashion-mnist', batchSize: 32, trainLimit: 32, testLimit: 64 }),
      0,
    );
    const model = buildModel('resnet8', { inputShape: data.shape, numClasses: data.numClasses, seed: 1 });
    const teacher = buildModel('resnet8', { inputShape: data.shape, numClasses: data.numClasses, seed: 1 });
    const cfg = pipelineSchema.parse({
      name: 'f16',
      student: { run: 'unused' },
      finetune: { epochs: 0 },
      export: ['onnx-fp16', 'tfjs-fp16'],
      check: { fp16MaxRelDiff: 1e-9 },
    });
    assert.equal(pipelineSchema.parse({ ...cfg, check: {} }).check.fp16MaxRelDiff, 1e-2);
    const out = join(scratch, 'f16');
    await assert.rejects(
      runPipeline(cfg, { model, teacher, data }, out, () => {}),
      /model\.fp16\.onnx: onnxruntime logits differ from tfjs by \S+, \S+ of the largest \|logit\| \(check\.fp16MaxRelDiff 1e-9\)/,
    );
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      stages: StageReport[];
      files: { path: string; bytes: number }[];
    };
    const row = results.stages.find((s) => s.stage === 'export-onnx-fp16')!;
    assert.equal(row.onnx!.format, 'onnx-fp16');
    assert.equal(row.onnx!.agreement, 100);
    assert.equal(row.onnx!.int8Target, undefined);
    assert.deepEqual(
      results.files.map((f) => f.path),
      ['export/model.fp16.onnx', 'export/tfjs-fp16/model.json', `export/tfjs-fp16/${WEIGHTS_FILE}`],
    );
  });
});
