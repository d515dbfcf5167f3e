/**
 * `retort search --queue`: the tiny search's candidates go to BullMQ on a Redis of the test's own
 * and are trained by a `retort worker` process (two jobs at a time) sharing the run store; the
 * search waits for each batch in the store and ends with the same history as with local workers
 * (the same five candidate runs: the store reuses what the queue finished).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import { search } from '../../src/run/search.js';
import { startRedis } from './redis.js';
import { bin, FP, fakeMeasure, TINY } from './search-fixtures.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-searchq-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('retort search --queue', () => {
  it('trains the candidates on a retort worker and finds what local workers find', async () => {
    const redis = await startRedis(scratch);
    after(() => redis.stop());
    const runs = join(scratch, 'runs');
    const lines: string[] = [];
    const w: ChildProcess = spawn(
      process.execPath,
      [bin, 'worker', '--queue', redis.url, '--concurrency', '2', '--threads', '1', '--store', runs],
      { cwd: scratch, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RETORT_QUIET: '1' } },
    );
    w.stderr!.setEncoding('utf8');
    w.stderr!.on('data', (c: string) => lines.push(...c.split('\n').filter(Boolean)));
    after(() => w.kill('SIGTERM'));
    const common = { runsRoot: runs, measure: fakeMeasure, fingerprint: FP, log: () => {} };
    const q = await search(TINY, { ...common, queue: redis.url });
    assert.equal(q.done, true, lines.join('\n'));
    assert.equal(q.history.length, 5);
    assert.ok(q.history.every((e) => e.accuracy !== null));
    assert.equal(lines.filter((l) => / start on /.test(l)).length, 5, lines.join('\n'));
    // Local workers on the same store: every candidate run is reused, the history is the same.
    const l = await search(TINY, { ...common, local: 2, force: true });
    assert.deepEqual(
      l.history.map((e) => [e.key, e.accuracy]),
      q.history.map((e) => [e.key, e.accuracy]),
    );
  });
});
