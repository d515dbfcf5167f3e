/**
 * Sweep grids: run names, order, the precedence and types of overrides, path resolution, the errors a
 * person meets (unknown keys, colliding names, a bad run), and the example grids under
 * configs/fashion-mnist/sweeps/ expanding to the runs they promise.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { expandGrid, filterRuns, gridTable, loadGrid, type SweepGrid } from '../../src/run/sweep-grid.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const scratch = mkdtempSync(join(tmpdir(), 'retort-sweep-grid-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes `text` at `rel` under the scratch folder; returns its absolute path. */
function put(rel: string, text: string): string {
  const p = join(scratch, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

put('exp/ce.yaml', 'name: ce\nmodel: { name: lightnn }\nepochs: 10\n');
put(
  'exp/kd.yaml',
  [
    'name: kd',
    'model: { name: lightnn }',
    'teacher: { model: { name: deepnn }, checkpoint: ckpt/teacher.ckpt }',
    'losses: [{ name: ce, weight: 0.1 }, { name: kd, weight: 0.9, T: 4 }]',
    '',
  ].join('\n'),
);
const expDir = join(scratch, 'exp');

/** An object grid whose experiment files are relative to the scratch folder. */
function expand(grid: Record<string, unknown>) {
  return expandGrid(grid as SweepGrid, { baseDir: scratch, where: 'test grid' });
}

describe('sweep grid: names and order', () => {
  it('first axis outermost, experiments innermost; labels and parts in order, the seed last', () => {
    const runs = expand({
      name: 'g',
      experiments: { ce: 'exp/ce.yaml', kd: 'exp/kd.yaml' },
      axes: { seed: [1, 2], 'optimizer.lr': [0.1, 0.05] },
    });
    assert.deepEqual(
      runs.map((r) => r.name),
      [
        'g-ce-lr0.1-s1',
        'g-kd-lr0.1-s1',
        'g-ce-lr0.05-s1',
        'g-kd-lr0.05-s1',
        'g-ce-lr0.1-s2',
        'g-kd-lr0.1-s2',
        'g-ce-lr0.05-s2',
        'g-kd-lr0.05-s2',
      ],
    );
    assert.deepEqual(
      runs.map((r) => [r.label, r.seed, r.values['optimizer.lr'], r.experiment.optimizer.lr]),
      [
        ['ce', 1, 0.1, 0.1],
        ['kd', 1, 0.1, 0.1],
        ['ce', 1, 0.05, 0.05],
        ['kd', 1, 0.05, 0.05],
        ['ce', 2, 0.1, 0.1],
        ['kd', 2, 0.1, 0.1],
        ['ce', 2, 0.05, 0.05],
        ['kd', 2, 0.05, 0.05],
      ],
    );
    for (const r of runs) {
      assert.equal(r.experiment.name, r.name);
      assert.deepEqual(r.values, { seed: r.seed, 'optimizer.lr': r.values['optimizer.lr'] });
    }
  });

  it('parts: numbers after the name, strings and booleans after a dash, others by position; odd characters become _', () => {
    const runs = expand({
      name: 'p',
      experiment: 'exp/ce.yaml',
      axes: {
        'data.hflip': [true],
        'optimizer.name': ['adam'],
        'optimizer.beta2': [0.99],
        'data.normalize': [
          { mean: [0.5], std: [0.5] },
          { mean: [0.2], std: [0.3] },
        ],
        'scheme.name': { name: 'col', values: ['a b/c'] },
        'data.batchSize': { name: '', values: [64] },
      },
    });
    assert.deepEqual(
      runs.map((r) => r.name),
      [
        'p-hflip-true-name-adam-beta2-0.99-normalize1-col-a_b_c-64',
        'p-hflip-true-name-adam-beta2-0.99-normalize2-col-a_b_c-64',
      ],
    );
  });

  it('a single experiment: label run, not in the name; no seed axis, no -s part', () => {
    const runs = expand({ name: 'one', experiment: 'exp/ce.yaml', axes: { epochs: [2, 3] } });
    assert.deepEqual(
      runs.map((r) => [r.name, r.label, r.seed, r.experiment.epochs]),
      [
        ['one-epochs2', 'run', 1, 2],
        ['one-epochs3', 'run', 1, 3],
      ],
    );
    const [only] = expand({ name: 'bare', experiment: 'exp/ce.yaml' });
    assert.equal(only!.name, 'bare');
  });

  it('the dry-run table: a header, then one aligned line per run (seed in its own column)', () => {
    const runs = expand({
      name: 't',
      experiments: { ce: 'exp/ce.yaml' },
      axes: { seed: [1, 2], 'optimizer.lr': [0.1] },
    });
    assert.equal(
      gridTable(runs),
      [
        'name           label  optimizer.lr  seed',
        't-ce-lr0.1-s1  ce     0.1           1',
        't-ce-lr0.1-s2  ce     0.1           2',
      ].join('\n'),
    );
  });
});

describe('sweep grid: overrides', () => {
  it('grid set, then the experiment set, then axes, then the name; the last one wins', () => {
    const runs = expand({
      name: 'o',
      set: { epochs: 3, 'optimizer.lr': 0.2, seed: 7 },
      experiments: {
        ce: { file: 'exp/ce.yaml', set: ['epochs=4', 'optimizer.momentum=0.5'] },
        kd: { file: 'exp/kd.yaml', set: { 'losses[1].T': 2 } },
      },
      axes: { 'optimizer.lr': [0.01] },
    });
    const [ce, kd] = runs;
    assert.deepEqual(ce!.sets, [
      'epochs=3',
      'optimizer.lr=0.2',
      'seed=7',
      'epochs=4',
      'optimizer.momentum=0.5',
      'optimizer.lr=0.01',
      'name="o-ce-lr0.01"',
    ]);
    assert.equal(ce!.experiment.epochs, 4);
    assert.equal(ce!.experiment.optimizer.lr, 0.01);
    assert.equal(ce!.experiment.optimizer.momentum, 0.5);
    assert.equal(ce!.seed, 7);
    assert.equal(kd!.experiment.epochs, 3);
    assert.equal(kd!.experiment.losses[1]!['T'], 2);
  });

  it('values keep their types: numbers, booleans, objects, lists, and strings that look like numbers', () => {
    const [run] = expand({
      name: 'types',
      experiment: 'exp/ce.yaml',
      set: { 'data.hflip': true, 'schedule.milestones': [3, 6], 'scheme.name': '10' },
      axes: { 'data.normalize': [{ mean: [0.5], std: [0.25] }], 'data.valFraction': [0.1] },
    });
    const d = run!.experiment.data;
    assert.equal(d.hflip, true);
    assert.deepEqual(run!.experiment.schedule.milestones, [3, 6]);
    assert.equal(run!.experiment.scheme?.name, '10');
    assert.deepEqual(d.normalize, { mean: [0.5], std: [0.25] });
    assert.equal(d.valFraction, 0.1);
    assert.deepEqual(run!.values, {
      'data.normalize': { mean: [0.5], std: [0.25] },
      'data.valFraction': 0.1,
    });
  });
});

describe('sweep grid: files and paths', () => {
  it('experiment files and path values are relative to the grid file; a bare teacher.run stays a run name', () => {
    const file = put(
      'sweeps/paths.yaml',
      [
        'name: paths',
        'experiments:',
        '  kd: ../exp/kd.yaml',
        '  kd-run: { file: ../exp/kd.yaml, set: { teacher: { model: { name: deepnn }, run: zoo-teacher } } }',
        '  kd-ckpt: { file: ../exp/kd.yaml, set: { teacher: { model: { name: deepnn }, checkpoint: t.ckpt } } }',
        'axes:',
        '  data.dir: [data/a]',
        '',
      ].join('\n'),
    );
    const loaded = loadGrid(file);
    assert.equal(loaded.baseDir, join(scratch, 'sweeps'));
    assert.equal(loaded.file, file);
    const [kd, kdRun, kdCkpt] = expandGrid(file);
    assert.equal(kd!.file, join(expDir, 'kd.yaml'));
    // Inside the experiment file: relative to the experiment's folder.
    assert.equal(kd!.experiment.teacher?.checkpoint, join(expDir, 'ckpt/teacher.ckpt'));
    // In the grid: relative to the grid's folder.
    assert.equal(kd!.experiment.data.dir, join(scratch, 'sweeps/data/a'));
    assert.equal(kd!.values['data.dir'], join(scratch, 'sweeps/data/a'));
    assert.equal(kd!.name, 'paths-kd-dir-data_a');
    // Paths inside an object value too; a bare run name stays a name under the runs root.
    assert.equal(kdRun!.experiment.teacher?.run, 'zoo-teacher');
    assert.equal(kdCkpt!.experiment.teacher?.checkpoint, join(scratch, 'sweeps/t.ckpt'));
  });

  it('an object grid resolves against baseDir', () => {
    const [run] = expandGrid({ name: 'obj', experiment: 'ce.yaml' }, { baseDir: expDir });
    assert.equal(run!.file, join(expDir, 'ce.yaml'));
  });
});

describe('sweep grid: --only', () => {
  const runs = () =>
    expand({
      name: 'g',
      experiments: { ce: 'exp/ce.yaml', kd: 'exp/kd.yaml' },
      axes: { seed: [1, 2], 'optimizer.lr': [0.1, 0.05] },
    });
  const names = (only: string) => filterRuns(runs(), only).map((r) => r.name);

  it('labels and names widen, each key=value narrows: kd at seed 1 over both rates', () => {
    assert.deepEqual(names('kd,seed=1'), ['g-kd-lr0.1-s1', 'g-kd-lr0.05-s1']);
    assert.deepEqual(names('optimizer.lr=0.05, seed=2'), ['g-ce-lr0.05-s2', 'g-kd-lr0.05-s2']);
    assert.deepEqual(names('g-ce-lr0.1-s2,kd,seed=2,seed=1,optimizer.lr=0.1'), [
      'g-kd-lr0.1-s1',
      'g-ce-lr0.1-s2',
      'g-kd-lr0.1-s2',
    ]);
    assert.equal(names('ce,kd').length, 8, 'every label: the whole grid, in grid order');
  });

  it('a term that matches nothing, or a filter that keeps nothing, is an error naming it', () => {
    assert.throws(
      () => filterRuns(runs(), 'kdd'),
      /'kdd' is no experiment label or run name .*labels: ce, kd/,
    );
    assert.throws(() => filterRuns(runs(), 'seed=3'), /no run has seed=3 \(values: 1, 2\)/);
    assert.throws(() => filterRuns(runs(), 'lr=0.1'), /'lr' is no axis key .*keys: seed, optimizer\.lr/);
    assert.throws(() => filterRuns(runs(), 'g-ce-lr0.1-s1,seed=2'), /keeps no run/);
    assert.throws(() => filterRuns(runs(), ' , '), /give labels, run names or key=value terms/);
  });
});

describe('sweep grid: errors', () => {
  it('two runs with one name: the error names both values', () => {
    assert.throws(
      () => expand({ name: 'c', experiment: 'exp/ce.yaml', axes: { 'data.dir': ['a b', 'a/b'] } }),
      (e: Error) =>
        e.message.startsWith('test grid: ') &&
        e.message.includes("'c-dir-a_b'") &&
        e.message.includes('data.dir="a b"') &&
        e.message.includes('data.dir="a/b"'),
    );
    assert.throws(
      () => expand({ name: 'c', experiment: 'exp/ce.yaml', axes: { epochs: [2, 2] } }),
      /two runs would both be named 'c-epochs2'/,
    );
  });

  it('an unknown key names the key and the grid file', () => {
    const file = put('sweeps/typo.yaml', 'name: t\nexperiment: ../exp/ce.yaml\naxis: { seed: [1] }\n');
    assert.throws(
      () => expandGrid(file),
      (e: Error) => e.message.startsWith(`${file}: `) && e.message.includes("unknown key 'axis'"),
    );
    assert.throws(
      () => expand({ name: 't', experiments: { a: { file: 'exp/ce.yaml', sett: {} } } }),
      /unknown key 'sett' at experiments\.a/,
    );
  });

  it('a bad run names the grid, the run and the original message', () => {
    const file = put(
      'sweeps/bad.yaml',
      'name: bad\nexperiment: ../exp/ce.yaml\naxes:\n  optimizer.lr: [0.1, -1]\n',
    );
    assert.throws(
      () => expandGrid(file),
      (e: Error) =>
        e.message.startsWith(`${file}: run bad-lr-1: ${join(expDir, 'ce.yaml')}: `) &&
        e.message.includes('optimizer.lr'),
    );
    assert.throws(
      () => expand({ name: 'gone', experiment: 'exp/missing.yaml' }),
      /^RetortError: test grid: run gone: config file .*missing\.yaml: cannot read/,
    );
  });

  it('grid shape: one of experiment/experiments, non-empty axes, valid names and keys', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ name: 'x' }, /give exactly one of experiment .* got neither/],
      [{ name: 'x', experiment: 'exp/ce.yaml', experiments: { a: 'exp/ce.yaml' } }, /got both/],
      [{ name: 'x', experiments: {} }, /experiments: no experiments/],
      [{ name: 'x', experiment: 'exp/ce.yaml', axes: {} }, /axes: no axes/],
      [{ name: 'x', experiment: 'exp/ce.yaml', axes: { seed: [] } }, /axes\.seed: no values/],
      [
        { name: 'x', experiment: 'exp/ce.yaml', axes: { lr: { name: 'lr', values: [] } } },
        /axes\.lr: no values/,
      ],
      [{ name: '../x', experiment: 'exp/ce.yaml' }, /name: '\.\.\/x': use letters/],
      [{ name: 'x', experiments: { 'a b': 'exp/ce.yaml' } }, /label 'a b'/],
      [
        { name: 'x', experiment: 'exp/ce.yaml', set: { name: 'y' } },
        /set\.name: the run name comes from the grid/,
      ],
      [{ name: 'x', experiment: 'exp/ce.yaml', set: ['epochs'] }, /set\[0\]: 'epochs': expected key=value/],
      [
        { name: 'x', experiment: 'exp/ce.yaml', axes: { 'a..b': [1] } },
        /'a\.\.b' is not a key like a\.b\[0\]\.c/,
      ],
      [{ name: 'x', experiment: 'exp/ce.yaml', axes: { seed: { name: 'rep', values: [1] } } }, /seed axis/],
      [
        { name: 'x', experiment: 'exp/ce.yaml', axes: { lr: { name: 'l r', values: [1] } } },
        /'l r': use letters/,
      ],
      [
        { name: 'x', experiment: 'exp/ce.yaml', axes: { epochs: 3 } },
        /expected a list of values or \{ name, values \}/,
      ],
    ];
    for (const [grid, re] of cases) assert.throws(() => expand(grid), re, JSON.stringify(grid));
  });

  it('a run name over the length limit fails before anything loads', () => {
    assert.throws(
      () => expand({ name: 'x'.repeat(199), experiment: 'exp/ce.yaml', axes: { epochs: [1] } }),
      /test grid: run name 'x+-epochs1': use letters/,
    );
  });
});

describe('example grids (configs/fashion-mnist/sweeps/)', () => {
  const sweeps = join(root, 'configs/fashion-mnist/sweeps');

  it('kd-temperature: 5 temperatures x 3 seeds of KD ResNet-8 on the small budget', () => {
    const runs = expandGrid(join(sweeps, 'kd-temperature.yaml'));
    assert.equal(runs.length, 15);
    assert.deepEqual(
      runs.slice(0, 5).map((r) => r.name),
      ['T1', 'T2', 'T4', 'T8', 'T16'].map((t) => `kd-temperature-${t}-s1`),
    );
    for (const r of runs) {
      assert.equal(r.experiment.losses[1]!.name, 'kd');
      assert.equal(r.experiment.losses[1]!['T'], r.values['losses[1].T']);
      assert.deepEqual(
        [
          r.experiment.epochs,
          r.experiment.data.trainLimit,
          r.experiment.data.cropPadding,
          r.experiment.data.hflip,
        ],
        [3, 30000, 0, false],
      );
    }
  });

  it('zoo: vanilla and every method folder with resnet8-from-resnet20.yaml, 3 seeds each, bench:zoo budget', () => {
    const cfgDir = join(root, 'configs/fashion-mnist');
    const methods = readdirSync(cfgDir)
      .filter(
        (d) => !['baseline', 'demo'].includes(d) && existsSync(join(cfgDir, d, 'resnet8-from-resnet20.yaml')),
      )
      .sort();
    const runs = expandGrid(join(sweeps, 'zoo.yaml'));
    assert.equal(runs.length, 3 * (1 + methods.length));
    assert.deepEqual(
      runs.slice(0, 1 + methods.length).map((r) => r.label),
      ['vanilla', ...methods],
    );
    for (const r of runs) {
      assert.equal(r.name, `zoo-e3-n30000-${r.label}-s${r.seed}`);
      const last = r.experiment.stages?.at(-1)?.epochs ?? r.experiment.epochs;
      assert.deepEqual([last, r.experiment.data.trainLimit, r.experiment.data.hflip], [3, 30000, false]);
      if (r.label !== 'vanilla') assert.equal(r.experiment.teacher?.run, 'fmnist-resnet20');
    }
  });

  it("zoo-18: the table's first 18 rows, the same runs as zoo.yaml's (so either sweep reuses the other's)", () => {
    const all = new Map(expandGrid(join(sweeps, 'zoo.yaml')).map((r) => [r.name, r]));
    const runs = expandGrid(join(sweeps, 'zoo-18.yaml'));
    assert.equal(runs.length, 54);
    for (const r of runs) {
      const same = all.get(r.name);
      assert.ok(same, `${r.name} is not a run of zoo.yaml`);
      assert.deepEqual(r.experiment, same.experiment, r.name);
    }
  });
});
