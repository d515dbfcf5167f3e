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
import { queueStatus } from '../../src/run/sweep-queue.js';
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

  it('a stopped search withdraws the jobs of its batch that no worker took', async () => {
    const redis = await startRedis(mkdtempSync(join(scratch, 'stop-')));
    after(() => redis.stop());
    const queueName = 'retort-stop';
    const stop = new AbortController();
    const lines: string[] = [];
    // No worker: the first batch waits in the queue until the search is stopped.
    const r = await search(TINY, {
      runsRoot: join(scratch, 'runs-stop'),
      measure: fakeMeasure,
      fingerprint: FP,
      queue: redis.url,
      queueName,
      signal: stop.signal,
      log: (l) => {
        lines.push(l);
        if (/waiting for retort worker/.test(l)) stop.abort();
      },
    });
    assert.equal(r.done, false);
    const withdrawn = lines.find((l) => /stopped; \d+ waiting job\(s\) withdrawn/.test(l));
    assert.ok(withdrawn, lines.join('\n'));
    assert.ok(!/stopped; 0 waiting/.test(withdrawn), withdrawn);
    const st = await queueStatus(redis.url, queueName);
    assert.equal(
      st.counts['waiting']! + st.counts['prioritized']! + st.counts['delayed']!,
      0,
      JSON.stringify(st.counts),
    );
  });
});
