import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { applyOverride, loadExperiment } from '../../src/config/load.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const dir = mkdtempSync(join(scratch, 'cfg-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

it('YAML with defaults, overrides of nested keys and list items', () => {
  const p = file(
    'a.yaml',
    'name: s1\nmodel: { name: lightnn }\nlosses:\n  - { name: ce, weight: 0.1 }\n  - { name: kd, weight: 0.9, T: 4 }\n',
  );
  const e = loadExperiment(p, ['epochs=3', 'optimizer.lr=0.01', 'losses[1].T=8', 'data.hflip=true']);
  assert.equal(e.epochs, 3);
  assert.equal(e.optimizer.lr, 0.01);
  assert.equal(e.optimizer.momentum, 0.9);
  assert.equal(e.losses[1]!['T'], 8);
  assert.equal(e.data.hflip, true);
  assert.equal(e.data.batchSize, 128);
});

it('errors name the file and key', () => {
  assert.throws(
    () => loadExperiment(file('b.yaml', 'name: x\nmodel: { name: a }\nepoch: 3\n')),
    /b\.yaml: unknown key 'epoch' at \(top level\) \(valid keys: name, seed, data, /,
  );
  assert.throws(
    () => loadExperiment(file('c.yaml', 'name: x\nmodel: { name: a }\noptimizer: { name: rmsprop }\n')),
    /c\.yaml: optimizer\.name: /,
  );
  assert.throws(() => loadExperiment(file('d.yaml', 'name: [\n')), /d\.yaml: not valid YAML/);
  assert.throws(() => loadExperiment(join(dir, 'missing.yaml')), /missing\.yaml: cannot read \(ENOENT\)/);
  assert.throws(
    () => loadExperiment(file('e.json', '{"name": "x", "model": {"name": "a"}}'), ['losses[3].T=1']),
    /--set losses\[3\]\.T: no element \[3\]/,
  );
  assert.throws(() => applyOverride({}, 'novalue'), /expected key=value/);
});
