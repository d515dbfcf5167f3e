import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';

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
    /--format must be onnx, onnx-int8, onnx-int8-dynamic, tfjs, tfjs-uint8, tfjs-uint16 or rtz, got 'onnx16'/,
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
});

it('retort export --format rtz and tfjs-uint8 of the shipped ResNet-20: written, measured, reloaded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'retort-export-rtz-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const repo = new URL('../../../../', import.meta.url).pathname;
  for (const f of ['config.json', 'model.ckpt', 'results.json'])
    copyFileSync(join(repo, 'models/fashion-mnist-resnet20', f), join(dir, f));
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
