/**
 * Run folders that cannot hurt each other: names that are only ever one folder under the runs
 * root, one writer per folder (a lock naming its holder, stale locks taken over), --force that
 * never moves a run someone is writing, and two real `retort train` processes of one run.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { experimentSchema } from '../../src/config/experiment.js';
import { checkRunName, prepareRunDir, releaseRunLock } from '../../src/train/run-dir.js';
import { RetortError } from '../../src/util/errors.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-rundir-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const cli = new URL('../../bin/retort.js', import.meta.url).pathname;

/** A process id that does not exist now: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

describe('run names', () => {
  it("'.', '..', paths, hidden and control characters are refused; folder names pass", () => {
    for (const bad of ['.', '..', '../x', 'a/b', 'a\\b', '.hidden', 'x\u0001', '', 'a b'])
      assert.throws(() => checkRunName(bad), RetortError, JSON.stringify(bad));
    for (const ok of ['fmnist-resnet8-kd', 'a.b_c-1', 'X']) checkRunName(ok);
    const r = experimentSchema.safeParse({
      name: '..',
      model: { name: 'lightnn' },
      losses: [{ name: 'ce' }],
    });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0]!.path, ['name']);
    assert.throws(() => prepareRunDir(scratch, '..', {}, { force: true }), /run name '\.\.'/);
    assert.ok(existsSync(scratch), 'the runs root itself is untouched');
  });
});

describe('run locks', () => {
  it('one writer: a second open of a held folder fails naming pid and host; release frees it', () => {
    const root = mkdtempSync(join(scratch, 'r-'));
    const dir = prepareRunDir(root, 'a', { x: 1 });
    const lock = JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')) as { pid: number; host: string };
    assert.deepEqual([lock.pid, lock.host], [process.pid, hostname()]);
    assert.throws(() => prepareRunDir(root, 'a', { x: 1 }, { resume: true }), /already open in this process/);
    releaseRunLock(join(dir, 'lock'));
    assert.ok(!existsSync(join(dir, 'lock')));
    prepareRunDir(root, 'a', { x: 1 }, { resume: true });
    releaseRunLock(join(dir, 'lock'));
  });

  it('a live holder blocks --force and --resume, and nothing is moved; a dead one is taken over', () => {
    const root = mkdtempSync(join(scratch, 'r-'));
    const dir = join(root, 'b');
    mkdirSync(dir);
    writeFileSync(join(dir, 'results.json'), '{"done":true}\n');
    const holder = spawn('sleep', ['30']);
    try {
      writeFileSync(
        join(dir, 'lock'),
        JSON.stringify({ pid: holder.pid, host: hostname(), started: 'then' }),
      );
      for (const opts of [{ force: true }, { resume: true }])
        assert.throws(
          () => prepareRunDir(root, 'b', {}, opts),
          new RegExp(`run folder .*b is in use by pid ${holder.pid} on ${hostname()} since then`),
        );
      assert.deepEqual(readdirSync(root), ['b'], 'nothing moved aside');
      assert.equal(readFileSync(join(dir, 'results.json'), 'utf8'), '{"done":true}\n');
    } finally {
      holder.kill();
    }
    const dead = deadPid();
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: dead, host: hostname(), started: 'then' }));
    const lines: string[] = [];
    prepareRunDir(root, 'b', {}, { force: true, log: (l) => lines.push(l) });
    assert.match(lines.join('\n'), new RegExp(`stale lock of pid ${dead} \\(no such process on`));
    const names = readdirSync(root).sort();
    assert.equal(names.length, 2);
    assert.match(names[1]!, /^b\.replaced-/);
    assert.equal(
      readFileSync(join(root, names[1]!, 'results.json'), 'utf8'),
      '{"done":true}\n',
      'the old run kept',
    );
    assert.ok(!existsSync(join(root, names[1]!, 'lock')), 'no lock left in the moved run');
    releaseRunLock(join(dir, 'lock'));
  });

  it("another host's lock is never taken over; the message says which file to remove", () => {
    const root = mkdtempSync(join(scratch, 'r-'));
    const dir = join(root, 'c');
    mkdirSync(dir);
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid: deadPid(), host: 'elsewhere', started: 'then' }));
    assert.throws(
      () => prepareRunDir(root, 'c', {}, { resume: true }),
      /on elsewhere since then; .*remove .*c\/lock/,
    );
  });

  it('two `retort train` of one run: the second fails at once naming the first; the first finishes intact', async () => {
    const root = mkdtempSync(join(scratch, 'cli-'));
    const cfg = join(root, 'exp.yaml');
    writeFileSync(
      cfg,
      [
        'name: twice',
        'model: { name: lightnn }',
        'data: { dataset: fashion-mnist, batchSize: 64, trainLimit: 512, testLimit: 200 }',
        'losses: [{ name: ce, weight: 1 }]',
        'optimizer: { name: adam, lr: 0.001, weightDecay: 0 }',
        'epochs: 6',
        '',
      ].join('\n'),
    );
    const args = [cli, 'train', cfg, '--runs', root];
    const env = { ...process.env, RETORT_QUIET: '1' };
    const first = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let firstErr = '';
    first.stderr.on('data', (d: Buffer) => {
      firstErr += d.toString();
    });
    const firstDone = new Promise<number | null>((res) => first.on('exit', (code) => res(code)));
    const lock = join(root, 'twice', 'lock');
    for (let i = 0; i < 600 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(lock), `the first run took its lock: ${firstErr}`);
    const t0 = performance.now();
    const second = spawnSync(process.execPath, [...args, '--force'], { env, encoding: 'utf8' });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(second.status, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`is in use by pid ${first.pid} on ${hostname()}`));
    // Process start-up (Node, tsx, tfjs) included; the lock is checked before any data is read.
    process.stderr.write(
      `second retort train failed after ${seconds.toFixed(2)} s (process start included)\n`,
    );
    // 0.83 s measured beside the first run on an otherwise quiet 2-core machine; 2 s with two other
    // jobs running. The bound leaves room for a loaded CI machine.
    assert.ok(seconds < 5, `${seconds} s`);
    assert.equal(await firstDone, 0, firstErr);
    const results = JSON.parse(readFileSync(join(root, 'twice', 'results.json'), 'utf8')) as {
      epochs: unknown[];
    };
    assert.equal(results.epochs.length, 6);
    assert.deepEqual(readdirSync(root).sort(), ['exp.yaml', 'twice'], 'nothing moved aside');
    assert.ok(!existsSync(lock), 'the first run released its lock');
  });
});
