/**
 * Sweeps on local worker processes (no Redis): the CLI end to end (dry run, --local 2, status,
 * report, a second submission that runs nothing), a job whose process is killed mid-run and
 * resumes to the same result, and a KD grid whose teacher cache is made by shard jobs first.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { buildModel } from '../../src/models/index.js';
import { planJobs, runLocal } from '../../src/run/sweep.js';
import { expandGrid } from '../../src/run/sweep-grid.js';
import { DirStore } from '../../src/run/sweep-store.js';
import { saveModelWeights } from '../../src/train/checkpoint.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-sweep-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const bin = new URL('../../bin/retort.js', import.meta.url).pathname;
const retort = (...args: string[]) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    cwd: scratch,
    env: { ...process.env, RETORT_QUIET: '1' },
  });

writeFileSync(
  join(scratch, 'tiny.yaml'),
  [
    'name: tiny',
    'seed: 1',
    'model: { name: lightnn }',
    'data: { dataset: fashion-mnist, batchSize: 64, trainLimit: 2048, testLimit: 300, cropPadding: 0, hflip: false }',
    'optimizer: { name: sgd, lr: 0.05, momentum: 0.9 }',
    'epochs: 4',
    'losses: [{ name: ce, weight: 1 }]',
    '',
  ].join('\n'),
);
writeFileSync(
  join(scratch, 'grid.yaml'),
  ['name: g', 'experiment: tiny.yaml', 'axes:', '  optimizer.lr: [0.05, 0.1]', '  seed: [1, 2]', ''].join(
    '\n',
  ),
);

describe('retort sweep --local', () => {
  it('dry run, 2 local workers, status, report; submitting again runs nothing', () => {
    const dry = retort('sweep', 'grid.yaml', '--dry-run');
    assert.equal(dry.status, 0, dry.stderr);
    assert.deepEqual(
      dry.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
      ['g-lr0.05-s1', 'g-lr0.05-s2', 'g-lr0.1-s1', 'g-lr0.1-s2'],
    );
    assert.ok(!existsSync(join(scratch, 'runs')), 'a dry run writes nothing');
    const r = retort('sweep', 'grid.yaml', '--local', '2');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /4 jobs done, 0 failed/);
    const status = retort('sweep', 'status', 'grid.yaml');
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, /4 runs in .*: 4 done, 0 running/);
    const part = retort('sweep', 'status', 'grid.yaml', '--only', 'seed=2');
    assert.equal(part.status, 0, part.stderr);
    assert.match(part.stdout, /2 runs in .*: 2 done, 0 running/, '--only narrows status too');
    const typo = retort('sweep', 'grid.yaml', '--only', 'seed=7', '--dry-run');
    assert.notEqual(typo.status, 0);
    assert.match(typo.stderr, /--only \(grid\.yaml\): no run has seed=7 \(values: 1, 2\)/);
    const report = retort('sweep', 'report', 'grid.yaml', '--out', 'report.md');
    assert.equal(report.status, 0, report.stderr);
    const md = readFileSync(join(scratch, 'report.md'), 'utf8');
    assert.match(md, /\| optimizer\.lr=0\.05 \| \d+\.\d\d ± \d+\.\d\d \| {2}\| 2 \|/);
    assert.match(md, /\| optimizer\.lr=0\.1 \| \d+\.\d\d ± \d+\.\d\d \| [+-]\d+\.\d\d \| 2 \|/);
    const again = retort('sweep', 'grid.yaml', '--local', '2');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /4 runs, 4 already finished .*; 0 jobs/);
  });

  it('a job whose process is killed mid-run starts again, resumes, and ends as the uninterrupted run', async () => {
    const runs = expandGrid(join(scratch, 'grid.yaml'));
    const reference = new DirStore(join(scratch, 'runs'));
    const store = new DirStore(join(scratch, 'killed'));
    const lines: string[] = [];
    let killed = '';
    const kids = new Map<string, import('node:child_process').ChildProcess>();
    const s = await runLocal(await planJobs(runs, store, { teacherShards: 0 }), store, {
      workers: 2,
      threads: 1,
      log: (l) => lines.push(l),
      onChild: (id, c) => kids.set(id, c),
      onProgress: (id, p) => {
        if (killed === '' && p.done === 2 && p.done < p.total) {
          killed = id;
          kids.get(id)!.kill('SIGKILL');
        }
      },
    });
    assert.deepEqual(s.failed, []);
    assert.notEqual(killed, '');
    assert.ok(
      lines.some((l) => l.startsWith(`[${killed}] start (attempt 2`)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => l.startsWith(`[${killed}] ${killed}: resuming (2 of 4 epochs done)`)),
      lines.join('\n'),
    );
    // The resumed run's time counts its first process's epochs too: at least every epoch's own time.
    const resumed = store.finished(runs.find((r) => r.name === killed)!.experiment)!;
    const epochSeconds = resumed.epochs.reduce((a, e) => a + e.seconds, 0);
    assert.equal(resumed.epochs.length, 4);
    assert.ok(
      resumed.trainSeconds >= epochSeconds,
      `trainSeconds ${resumed.trainSeconds} < the 4 epochs' ${epochSeconds}`,
    );
    for (const r of runs) {
      const a = store.finished(r.experiment)!;
      const b = reference.finished(r.experiment)!;
      assert.equal(a.testTop1, b.testTop1, r.name);
      assert.equal(a.testLoss, b.testLoss, r.name);
      assert.ok(
        readFileSync(join(store.runsRoot, r.name, 'model.ckpt')).equals(
          readFileSync(join(reference.runsRoot, r.name, 'model.ckpt')),
        ),
        `${r.name}: final weights differ`,
      );
    }
  });

  it('a KD grid: the teacher cache is made by shard jobs and a merge, then every run reuses it', async () => {
    await tf.setBackend('native');
    const ckpt = join(scratch, 'teacher.ckpt');
    saveModelWeights(ckpt, buildModel('lightnn', { inputShape: [28, 28, 1], numClasses: 10, seed: 9 }), {});
    writeFileSync(
      join(scratch, 'kd.yaml'),
      [
        'name: kd',
        'seed: 1',
        'model: { name: lightnn }',
        'teacher: { model: { name: lightnn }, checkpoint: teacher.ckpt }',
        // 1,100 images: the cache pass reads batches of 500, so 3 batches to share between 2 shards.
        'data: { dataset: fashion-mnist, batchSize: 64, trainLimit: 1100, testLimit: 200, cropPadding: 0, hflip: false }',
        'optimizer: { name: sgd, lr: 0.05, momentum: 0.9 }',
        'epochs: 1',
        'losses: [{ name: ce, weight: 0.5 }, { name: kd, weight: 0.5, T: 4 }]',
        '',
      ].join('\n'),
    );
    const runs = expandGrid(
      { name: 'kd', experiment: 'kd.yaml', axes: { seed: [1, 2] } },
      { baseDir: scratch },
    );
    const store = new DirStore(join(scratch, 'kd-store'));
    const jobs = await planJobs(runs, store, { teacherShards: 2 });
    assert.deepEqual(
      jobs.map((j) => j.kind),
      ['teacher-shard', 'teacher-shard', 'teacher-merge', 'run', 'run'],
    );
    const key = jobs[2]!.kind === 'teacher-merge' ? jobs[2]!.cacheKey : '';
    assert.ok(jobs.slice(3).every((j) => j.kind === 'run' && j.cacheKey === key));
    const lines: string[] = [];
    const s = await runLocal(jobs, store, { workers: 2, threads: 1, log: (l) => lines.push(l) });
    assert.deepEqual(s.failed, []);
    const cacheDir = join(store.runsRoot, '.cache', 'teacher');
    assert.deepEqual(readdirSync(cacheDir), [`${key}.ckpt`]);
    for (const r of runs) {
      assert.ok(store.finished(r.experiment), r.name);
      assert.ok(
        lines.some((l) => l.startsWith(`[${r.name}]`) && l.includes('reused from')),
        `${r.name} did not reuse the cache:\n${lines.join('\n')}`,
      );
    }
    // Nothing left to plan: the cache and the runs exist.
    assert.deepEqual(await planJobs(runs, store, { teacherShards: 2 }), []);
  });
});
