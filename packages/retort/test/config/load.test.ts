import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, it } from 'node:test';
import { experimentSchema } from '../../src/config/experiment.js';
import { applyOverride, loadExperiment } from '../../src/config/load.js';
import { runFolder } from '../../src/config/paths.js';

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
  // Unset optimizer fields are torch.optim's defaults; the schedule is constant, as without a scheduler.
  assert.equal(e.optimizer.momentum, 0);
  assert.equal(e.optimizer.weightDecay, 0);
  assert.equal(e.schedule.kind, 'constant');
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

it("paths in a config resolve against the config file's folder; run names and --set values do not", () => {
  const sub = mkdtempSync(join(scratch, 'proj-'));
  mkdirSync(join(sub, 'cfg'));
  const p = join(sub, 'cfg', 'kd.yaml');
  writeFileSync(
    p,
    [
      'name: s',
      'model: { name: lightnn }',
      'data: { dataset: csv, dir: ../data }',
      'teacher: { model: { name: deepnn }, checkpoint: ./t.ckpt }',
      '',
    ].join('\n'),
  );
  const e = loadExperiment(p);
  assert.equal(e.data.dir, join(sub, 'data'));
  assert.equal(e.teacher?.checkpoint, join(sub, 'cfg', 't.ckpt'));
  // The same file read from elsewhere gives the same paths: process.cwd() plays no part.
  const cwd = process.cwd();
  process.chdir(scratch);
  try {
    assert.equal(loadExperiment(join('.', relative(scratch, p))).data.dir, join(sub, 'data'));
  } finally {
    process.chdir(cwd);
  }
  // A value typed on the command line is the user's own path, relative to where they are.
  assert.equal(loadExperiment(p, ['data.dir=here']).data.dir, 'here');
  // A run: a bare name is a run under the runs root; with a slash it is a path.
  writeFileSync(
    p,
    'name: s\nmodel: { name: lightnn }\nteacher: { model: { name: deepnn }, run: fmnist-t }\n',
  );
  assert.equal(loadExperiment(p).teacher?.run, 'fmnist-t');
  assert.equal(runFolder('fmnist-t', 'myruns'), join('myruns', 'fmnist-t'));
  writeFileSync(
    p,
    'name: s\nmodel: { name: lightnn }\nteacher: { model: { name: deepnn }, run: ../runs/t }\n',
  );
  assert.equal(loadExperiment(p).teacher?.run, join(sub, 'runs', 't'));
  assert.equal(runFolder(join(sub, 'runs', 't'), 'myruns'), join(sub, 'runs', 't'));
});

it("optimizer defaults are torch.optim's per optimizer: SGD, Adam and AdamW", () => {
  const parse = (o: object) =>
    experimentSchema.parse({ name: 'x', model: { name: 'lightnn' }, optimizer: o }).optimizer;
  assert.deepEqual(parse({ name: 'sgd', lr: 0.1 }), {
    name: 'sgd',
    lr: 0.1,
    momentum: 0,
    nesterov: false,
    weightDecay: 0,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
  });
  assert.equal(parse({ name: 'adam' }).lr, 0.001);
  assert.equal(parse({ name: 'adam' }).weightDecay, 0);
  assert.equal(parse({ name: 'adamw' }).weightDecay, 0.01);
  assert.equal(parse({ name: 'adamw', weightDecay: 0.05 }).weightDecay, 0.05);
  assert.throws(() => parse({ name: 'adam', momentun: 0.9 }));
});
