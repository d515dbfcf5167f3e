import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { loadTfjs } from '../../src/export/tfjs.js';

const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RETORT_QUIET: '1' },
  });

it('retort export names a bad format and a folder that is not a finished run', () => {
  const bad = run('export', '/nonexistent', '--format', 'onnx16');
  assert.equal(bad.status, 1);
  assert.match(
    bad.stderr,
    /--format must be onnx, onnx-int8, onnx-int8-dynamic, onnx-fp16, tfjs, tfjs-uint8, tfjs-uint16, tfjs-fp16 or rtz, got 'onnx16'/,
  );
  const missing = run('export', '/nonexistent');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /\/nonexistent\/config\.json not found \(is \/nonexistent a finished run\?\)/);
});

it('retort export refuses a bad --min-agreement and one without an int8 format', () => {
  const high = run('export', '/nonexistent', '--format', 'onnx-int8', '--min-agreement', '101');
  assert.equal(high.status, 1);
  assert.match(high.stderr, /--min-agreement must be a percentage in \[0, 100\], got 101/);
  const fp32 = run('export', '/nonexistent', '--format', 'onnx', '--min-agreement', '95');
  assert.equal(fp32.status, 1);
  assert.match(fp32.stderr, /--min-agreement applies to onnx-int8 and onnx-int8-dynamic, not onnx/);
  const rel = run('export', '/nonexistent', '--format', 'tfjs', '--max-rel-diff', '0.1');
  assert.equal(rel.status, 1);
  assert.match(rel.stderr, /--max-rel-diff applies to onnx-fp16 and tfjs-fp16, not tfjs/);
  const zero = run('export', '/nonexistent', '--format', 'onnx-fp16', '--max-rel-diff', '0');
  assert.equal(zero.status, 1);
  assert.match(zero.stderr, /--max-rel-diff must be a positive number, got 0/);
});

/** A copy of the shipped ResNet-20 run (3 epochs on Fashion-MNIST); `testLimit` shortens the ONNX checks. */
function shippedRun(prefix: string, testLimit?: number): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const repo = new URL('../../../../', import.meta.url).pathname;
  for (const f of ['config.json', 'model.ckpt', 'results.json'])
    copyFileSync(join(repo, 'models/fashion-mnist-resnet20', f), join(dir, f));
  if (testLimit !== undefined) {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { data: object };
    config.data = { ...config.data, testLimit };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  }
  return dir;
}

it('retort export --format rtz and tfjs-uint8 of the shipped ResNet-20: written, measured, reloaded', () => {
  const dir = shippedRun('retort-export-rtz-');
  const rtz = run('export', dir, '--format', 'rtz');
  assert.equal(rtz.status, 0, rtz.stderr);
  const r = JSON.parse(rtz.stdout) as {
    maxAbsDiff: number;
    files: { path: string; bytes: number; gzipBytes: number }[];
  };
  // Dense fp32 weights: the bundle is lossless, so the reloaded model is the same model.
  assert.equal(r.maxAbsDiff, 0);
  assert.equal(r.files[0]!.bytes, statSync(join(dir, 'export', 'model.rtz')).size);
  assert.match(rtz.stderr, /model\.rtz: \d+ B, gzip \d+ B/);
  // A file the user names is not replaced.
  const again = run('export', dir, '--format', 'rtz', '--out', join(dir, 'export', 'model.rtz'));
  assert.equal(again.status, 1);
  assert.match(again.stderr, /model\.rtz: already exists/);
  const u8 = run('export', dir, '--format', 'tfjs-uint8');
  assert.equal(u8.status, 0, u8.stderr);
  const q = JSON.parse(u8.stdout) as { maxAbsDiff: number; files: { path: string; bytes: number }[] };
  assert.ok(
    q.maxAbsDiff > 0 && q.maxAbsDiff < 1,
    `uint8 weights change the logits a little: ${q.maxAbsDiff}`,
  );
  const bin = q.files.find((f) => f.path.endsWith('.bin'))!;
  assert.ok(Math.abs(bin.bytes - r.files[0]!.bytes / 4) < 0.05 * bin.bytes);
});

it('retort export --format onnx-fp16 and tfjs-fp16 of the shipped ResNet-20: half the fp32 files, checked, loaded and run', async () => {
  const dir = shippedRun('retort-export-fp16-', 256);
  const exported = <T>(format: string) => {
    const r = run('export', dir, '--format', format);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };
  type OnnxReport = { out: string; bytes: number; testImages: number; maxRelLogitDiff?: number };
  const onnx32 = exported<OnnxReport>('onnx');
  const onnx16 = exported<OnnxReport>('onnx-fp16');
  assert.match(onnx16.out, /\.fp16\.onnx$/);
  assert.equal(onnx16.testImages, 256);
  for (const r of [onnx32, onnx16]) {
    assert.equal(statSync(r.out).size, r.bytes);
    assert.ok(existsSync(`${r.out}.json`), `${r.out}: sidecar`);
  }
  const onnxRatio = onnx16.bytes / onnx32.bytes;
  assert.ok(onnxRatio > 0.45 && onnxRatio < 0.55, `onnx-fp16 is ${onnxRatio.toFixed(3)} of the fp32 file`);
  assert.equal(onnx32.maxRelLogitDiff, undefined);
  assert.ok(onnx16.maxRelLogitDiff! > 0 && onnx16.maxRelLogitDiff! <= 1e-2, `${onnx16.maxRelLogitDiff}`);

  type TfjsReport = {
    out: string;
    maxAbsDiff: number;
    maxRelDiff?: number;
    files: { path: string; bytes: number }[];
  };
  const tfjs32 = exported<TfjsReport>('tfjs');
  const tfjs16 = exported<TfjsReport>('tfjs-fp16');
  const shard = (r: TfjsReport) => r.files.find((f) => f.path.endsWith('.bin'))!.bytes;
  assert.equal(shard(tfjs16) * 2, shard(tfjs32), 'float16 weights: 2 bytes each where fp32 has 4');
  assert.ok(tfjs16.maxRelDiff! > 0 && tfjs16.maxRelDiff! <= 1e-2, `${tfjs16.maxRelDiff}`);
  assert.ok(existsSync(join(tfjs16.out, 'retort.json')));

  // Both load in their runtimes and compute the fp32 files' logits up to fp16 rounding.
  const x = Float32Array.from({ length: 2 * 28 * 28 }, (_, i) => Math.sin(i));
  const ort = await import('onnxruntime-node');
  const logits = async (file: string) => {
    const session = await ort.InferenceSession.create(file);
    const out = await session.run({ input: new ort.Tensor('float32', x, [2, 28, 28, 1]) });
    await session.release();
    return out['output']!.data as Float32Array;
  };
  const predict = async (folder: string) => {
    const m = await loadTfjs(folder);
    const y = tf.tidy(
      () => (m.predict(tf.tensor4d(x, [2, 28, 28, 1])) as tf.Tensor).dataSync() as Float32Array,
    );
    m.dispose();
    return y;
  };
  const relDiff = (a: Float32Array, b: Float32Array) => {
    assert.equal(a.length, 20);
    let d = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      d = Math.max(d, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    return d / scale;
  };
  const onnxRel = relDiff(await logits(onnx16.out), await logits(onnx32.out));
  assert.ok(onnxRel > 0 && onnxRel <= 1e-2, `onnxruntime: fp16 vs fp32 logits ${onnxRel}`);
  const tfjsRel = relDiff(await predict(tfjs16.out), await predict(tfjs32.out));
  assert.ok(tfjsRel > 0 && tfjsRel <= 1e-2, `tfjs: fp16 vs fp32 logits ${tfjsRel}`);

  const strict = run('export', dir, '--format', 'tfjs-fp16', '--max-rel-diff', '1e-9');
  assert.equal(strict.status, 1);
  assert.match(strict.stderr, /of the largest \|logit\| \(> --max-rel-diff 1e-9\); the files are written/);
});
