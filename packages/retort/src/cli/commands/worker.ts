/** `retort worker --queue redis://host:port`: take sweep jobs from a BullMQ queue on this machine. */
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const options: readonly OptionSpec[] = [
  { name: 'queue', kind: 'string', help: 'Redis address (redis://host:port) of the sweep queue' },
  { name: 'queue-name', kind: 'string', help: 'BullMQ queue name', default: 'retort' },
  { name: 'concurrency', kind: 'number', help: 'jobs at once (each in its own process)', default: 1 },
  { name: 'threads', kind: 'number', help: 'OpenMP threads per job (default: cores / concurrency)' },
  {
    name: 'store',
    kind: 'string',
    help: "the run store's folder as this machine sees it (default: the path given at submission)",
  },
  {
    name: 'lock-seconds',
    kind: 'number',
    help: 'how long a job may go without its worker renewing the lock before another worker takes it over',
    default: 60,
  },
  { name: 'until-empty', kind: 'flag', help: 'exit once the queue has nothing left to run' },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

export const workerCommand: Command = {
  name: 'worker',
  summary: SUMMARIES.worker,
  async run(argv) {
    const o = parseOptions(argv, options, 'worker');
    if (o['help'] === true) {
      console.log(
        `usage: retort worker --queue redis://host:port [options]\n\n${helpText('worker', SUMMARIES.worker, options)}`,
      );
      return;
    }
    if (typeof o['queue'] !== 'string')
      throw new Error('retort worker: --queue redis://host:port is required');
    const concurrency = Number(o['concurrency']);
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new Error('retort worker: --concurrency must be ≥ 1');
    const { runWorker } = await import('../../run/sweep-queue.js');
    const { threadsPer } = await import('../../run/sweep.js');
    const ctl = new AbortController();
    // The first Ctrl-C lets the jobs in hand finish; the second stops at once (they resume elsewhere).
    process.on('SIGINT', () => {
      if (ctl.signal.aborted) process.exit(130);
      process.stderr.write('worker: finishing the jobs in hand (Ctrl-C again to stop now)\n');
      ctl.abort();
    });
    process.once('SIGTERM', () => ctl.abort());
    const r = await runWorker({
      url: o['queue'],
      queueName: String(o['queue-name']),
      concurrency,
      threads: o['threads'] !== undefined ? Number(o['threads']) : threadsPer(concurrency),
      ...(typeof o['store'] === 'string' ? { store: o['store'] } : {}),
      lockSeconds: Number(o['lock-seconds']),
      untilEmpty: o['until-empty'] === true,
      signal: ctl.signal,
    });
    console.log(JSON.stringify({ done: r.done.length, failed: r.failed }));
  },
};
