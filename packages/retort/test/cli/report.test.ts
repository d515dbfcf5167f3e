import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';

const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RETORT_QUIET: '1' },
  });
const tmp = mkdtempSync(join(tmpdir(), 'retort-report-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

it('retort report <run> writes <run>/report.html and says where; no run is an error', () => {
  const dir = join(tmp, 'r1');
  mkdirSync(dir);
  const epochs = [1, 2].map((e) => ({
    epoch: e,
    lr: 0.1,
    trainLoss: 1 / e,
    terms: { ce: 1 / e },
    trainTop1: 50,
    valTop1: 60,
    seconds: 1,
    imgPerSec: 10,
  }));
  writeFileSync(
    join(dir, 'results.json'),
    JSON.stringify({
      name: 'r1',
      model: 'mlp',
      params: 10,
      testTop1: 60,
      testTop5: 90,
      trainSeconds: 2,
      epochs,
      stages: [],
    }),
  );
  const r = run('report', dir);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { report: string; runs: number; figures: number };
  assert.equal(out.report, join(dir, 'report.html'));
  assert.ok(existsSync(out.report));
  assert.deepEqual([out.runs, out.figures], [1, 1]);
  const none = run('report');
  assert.equal(none.status, 1);
  assert.match(none.stderr, /give at least one run folder/);
});
