import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';

const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RETORT_QUIET: '1' },
  });

it('retort export names a bad format and a folder that is not a finished run', () => {
  const bad = run('export', '/nonexistent', '--format', 'onnx16');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--format must be onnx, onnx-int8, onnx-int8-dynamic or tfjs, got 'onnx16'/);
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
