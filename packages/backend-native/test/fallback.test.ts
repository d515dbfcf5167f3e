import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// Without the addon, backend `native` must still compute (on the JS kernels) and say why, once.
it('runs on JS kernels with one explanatory line when the addon is missing', () => {
  const script = `
    import * as tf from '@tensorflow/tfjs-core';
    import { nativeAvailable } from 'retort-kd-native';
    await tf.setBackend('native');
    const y = tf.conv2d(tf.ones([1, 4, 4, 2]), tf.ones([3, 3, 2, 1]), 1, 'same');
    console.log(JSON.stringify({ nativeAvailable, backend: tf.getBackend(), sum: tf.sum(y).dataSync()[0] }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, RETORT_ADDON_PATH: '/nonexistent/retort_native.node', RETORT_QUIET: '0' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { nativeAvailable: boolean; backend: string; sum: number };
  assert.deepEqual(out, { nativeAvailable: false, backend: 'native', sum: 2 * (4 * 4 + 8 * 6 + 4 * 9) });
  const lines = r.stderr.split('\n').filter((l) => l.includes('native kernels unavailable'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /\/nonexistent\/retort_native\.node is not built/);
});

// tfjs's cpu backend would print an "install tfjs-node" banner on first use; cpu is the reference
// backend here, so importing retort-kd-native silences it (and `native` never prints it).
it('prints no tfjs-node banner on the cpu or the native backend', () => {
  const script = `
    import * as tf from '@tensorflow/tfjs-core';
    import 'retort-kd-native';
    for (const b of ['cpu', 'native']) {
      await tf.setBackend(b);
      tf.add(tf.tensor([1, 2]), 1).dataSync();
    }
    console.log('done');
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    env: { ...process.env, RETORT_QUIET: '1' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'done');
  assert.doesNotMatch(r.stderr, /tfjs-node|speed things up/);
});
