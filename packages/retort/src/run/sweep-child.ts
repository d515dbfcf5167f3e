/**
 * The process one sweep job runs in (started by spawnJob in sweep-job.ts): it receives the job over
 * its IPC channel, runs it, reports progress and the outcome, and exits. When its parent dies (a
 * worker killed outright) the channel closes and it exits at once: an orphan must not keep training
 * a run that the queue will hand to another worker.
 */
import 'retort-kd-native';
import { Worker } from 'node:worker_threads';
import { type ChildMessage, type ChildStart, executeJob } from './sweep-job.js';
import { openStore } from './sweep-store.js';

function send(m: ChildMessage): Promise<void> {
  return new Promise((done) => {
    if (!process.send) return done();
    process.send(m, undefined, {}, () => done());
  });
}

process.on('disconnect', () => process.exit(70));
// Training keeps the event loop busy for whole runs (its awaits resolve at once), so the disconnect
// event may come only when the run is over. A thread of its own watches the parent instead: once
// this process is re-parented (its worker died), it ends at once. The run's checkpoints are written
// atomically and its lock is taken over by the next holder, so nothing is left half-written.
const watchdog = new Worker(
  `const p0 = process.ppid, me = process.pid;
   setInterval(() => { if (process.ppid !== p0) process.kill(me, 'SIGKILL'); }, 250);`,
  { eval: true },
);
watchdog.unref();

process.once('message', (start: ChildStart) => {
  void (async () => {
    try {
      const outcome = await executeJob(start.job, openStore(start.store), {
        log: (line) => process.stderr.write(`${line}\n`),
        onProgress: (progress) => void send({ type: 'progress', progress }),
        queueOwned: start.queueOwned,
      });
      await send({ type: 'done', outcome });
      process.exit(0);
    } catch (e) {
      await send({ type: 'error', message: (e as Error).message });
      process.exit(1);
    }
  })();
});
