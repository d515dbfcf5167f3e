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
