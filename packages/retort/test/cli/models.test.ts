import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { it } from 'node:test';

const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RETORT_QUIET: '1' },
  });

it('retort models lists the zoo with trainable parameter counts; bad input and unknown commands fail clearly', () => {
  const r = run('models', '--input', '28,28,1', '--classes', '10');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| resnet8 \| 77,754 \|/);
  assert.match(r.stdout, /\| mlp \| 50,890 \|/);
  const bad = run('models', '--input', '28,28');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--input expects H,W,C, got '28,28'/);
  const unknown = run('trian');
  assert.equal(unknown.status, 1);
  assert.match(
    unknown.stderr,
    /unknown command 'trian' \(known: train, distill, eval, export, compress, models, demo\)/,
  );
  const opt = run('train', 'x.yaml', '--sett', 'a=1');
  assert.match(opt.stderr, /unknown option --sett \(known: --set, --runs, --resume, --force, --help\)/);
});
