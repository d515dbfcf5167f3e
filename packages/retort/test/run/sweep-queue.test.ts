/**
 * A sweep through BullMQ on a Redis of the test's own: two `retort worker` processes, each in its
 * own working folder, sharing one run store; a 6-run grid; one worker killed with SIGKILL while it
 * trains. Every run must finish, each with exactly the results of the same run done serially
 * (the interrupted one resumed from its last epoch's checkpoint by the other worker), and
 * submitting the grid again must run nothing.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { planJobs, runLocal } from '../../src/run/sweep.js';
import { expandGrid } from '../../src/run/sweep-grid.js';
import { queueStatus, submitJobs } from '../../src/run/sweep-queue.js';
import { DirStore } from '../../src/run/sweep-store.js';
import { startRedis } from './redis.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-sweepq-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const bin = new URL('../../bin/retort.js', import.meta.url).pathname;

/** A tiny experiment: the tutorial's small CNN on 4,096 Fashion-MNIST images, 6 epochs (about 1 s each). */
export function writeTinyExperiment(dir: string): string {
  const file = join(dir, 'tiny.yaml');
  writeFileSync(
    file,
    [
      'name: tiny',
      'seed: 1',
      'model: { name: lightnn }',
      'data: { dataset: fashion-mnist, batchSize: 64, trainLimit: 4096, testLimit: 500, cropPadding: 0, hflip: false }',
      'optimizer: { name: sgd, lr: 0.05, momentum: 0.9 }',
      'epochs: 6',
      'losses: [{ name: ce, weight: 1 }]',
      '',
    ].join('\n'),
  );
  return file;
}

function worker(url: string, cwd: string, lines: string[]): ChildProcess {
  mkdirSync(cwd, { recursive: true });
  const w = spawn(
    process.execPath,
    [bin, 'worker', '--queue', url, '--threads', '1', '--lock-seconds', '3', '--until-empty'],
    { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RETORT_QUIET: '1' } },
  );
  w.stderr!.setEncoding('utf8');
  w.stderr!.on('data', (c: string) => lines.push(...c.split('\n').filter(Boolean)));
  return w;
}

const exited = (c: ChildProcess) =>
  new Promise<number | null>((done) =>
    c.exitCode !== null ? done(c.exitCode) : c.once('exit', (code) => done(code)),
  );

describe('sweep on BullMQ workers', () => {
  it('6 runs, 2 workers, one killed mid-run: all finish equal to serial runs; resubmitting runs nothing', async () => {
    const redis = await startRedis(scratch);
    after(() => redis.stop());
    const file = writeTinyExperiment(scratch);
    const grid = { name: 'q', experiment: file, axes: { 'optimizer.lr': [0.05, 0.1], seed: [1, 2, 3] } };
    const runs = expandGrid(grid, { baseDir: scratch });
    assert.equal(runs.length, 6);

    // The same six runs one after the other in one worker process: the reference.
    const serial = new DirStore(join(scratch, 'serial'));
    const s = await runLocal(await planJobs(runs, serial, { teacherShards: 0 }), serial, {
      workers: 1,
      threads: 1,
      log: () => {},
    });
    assert.deepEqual(s.failed, []);

    const shared = new DirStore(join(scratch, 'shared'));
    const jobs = await planJobs(runs, shared, { teacherShards: 0 });
    const sub = await submitJobs(jobs, redis.url, shared.runsRoot);
    assert.equal(sub.added.length, 6);
    const log1: string[] = [];
    const log2: string[] = [];
    const w1 = worker(redis.url, join(scratch, 'w1'), log1);
    const w2 = worker(redis.url, join(scratch, 'w2'), log2);
    // Kill worker 1 once both workers are inside a run with an epoch done.
    const t0 = Date.now();
    let killedRun: string | undefined;
    while (Date.now() - t0 < 120_000) {
      const states = runs.map((r) => shared.state(r.experiment));
      const mine = log1
        .map((l) => /^\[([^\]]+)\] start/.exec(l)?.[1])
        .filter((x) => x !== undefined)
        .at(-1);
      const st = states.find((x) => x.name === mine);
      if (st && st.state === 'running' && st.epochsDone >= 1 && st.epochsDone < st.epochsTotal) {
        killedRun = mine;
        w1.kill('SIGKILL');
        break;
      }
      await new Promise((w) => setTimeout(w, 100));
    }
    assert.ok(killedRun, `worker 1 never got inside a run:\n${log1.join('\n')}`);
    const code2 = await Promise.race([
      exited(w2),
      new Promise<'timeout'>((w) => setTimeout(() => w('timeout'), 300_000)),
    ]);
    if (code2 === 'timeout') w2.kill('SIGKILL');
    assert.equal(code2, 0, `worker 2 did not finish the queue:\n${log2.join('\n')}`);
    // The killed run was taken over and resumed by worker 2.
    assert.ok(
      log2.some((l) => l.startsWith(`[${killedRun}]`) && l.includes('resuming')),
      `worker 2 did not resume ${killedRun}:\n${log2.join('\n')}`,
    );
    for (const r of runs) {
      const a = shared.finished(r.experiment);
      const b = serial.finished(r.experiment);
      assert.ok(a && b, `${r.name} did not finish`);
      assert.equal(a.testTop1, b.testTop1, `${r.name}: test top-1`);
      assert.equal(a.testLoss, b.testLoss, `${r.name}: test loss`);
      assert.deepEqual(
        a.epochs.map((e) => e.trainLoss),
        b.epochs.map((e) => e.trainLoss),
        `${r.name}: training losses`,
      );
      assert.ok(
        readFileSync(join(shared.runsRoot, r.name, 'model.ckpt')).equals(
          readFileSync(join(serial.runsRoot, r.name, 'model.ckpt')),
        ),
        `${r.name}: final weights differ`,
      );
    }

    // The queue's view: six completed, none failed or waiting.
    const q = await queueStatus(redis.url);
    assert.equal(q.counts['completed'], 6);
    assert.equal(q.counts['failed'], 0);
    assert.equal(q.counts['waiting'], 0);
    assert.deepEqual(q.active, []);

    // Again: every job id is known, nothing is added, and the store is untouched.
    const stamp = runs.map((r) => statSync(join(shared.runsRoot, r.name, 'results.json')).mtimeMs);
    const again = await submitJobs(
      await planJobs(runs, shared, { teacherShards: 0 }),
      redis.url,
      shared.runsRoot,
    );
    assert.deepEqual(again.added, []);
    const again2 = await submitJobs(jobs, redis.url, shared.runsRoot);
    assert.deepEqual(again2.added, []);
    assert.equal(again2.existing.length, 6);
    const w3log: string[] = [];
    assert.equal(await exited(worker(redis.url, join(scratch, 'w3'), w3log)), 0);
    assert.ok(!w3log.some((l) => / start/.test(l)), w3log.join('\n'));
    assert.deepEqual(
      runs.map((r) => statSync(join(shared.runsRoot, r.name, 'results.json')).mtimeMs),
      stamp,
    );
  });
});
