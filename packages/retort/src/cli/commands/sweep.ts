/**
 * `retort sweep <grid.yaml>`: expand a grid and run it here (`--local N` worker processes) or
 * enqueue it on Redis (`--queue redis://...`) for `retort worker`s anywhere;
 * `retort sweep status <grid>` and `retort sweep report <grid>` read the run store.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../util/atomic.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const common: readonly OptionSpec[] = [
  {
    name: 'store',
    kind: 'string',
    help: 'run store: a folder every worker sees (a shared mount across machines)',
    default: 'runs',
  },
  {
    name: 'queue',
    kind: 'string',
    help: 'Redis address (redis://host:port): enqueue on BullMQ instead of running here',
  },
  { name: 'queue-name', kind: 'string', help: 'BullMQ queue name', default: 'retort' },
  {
    name: 'only',
    kind: 'string',
    help: 'a part of the grid: labels or run names, and key=value on an axis or seed (kd,dkd,seed=1)',
  },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

const runOptions: readonly OptionSpec[] = [
  { name: 'dry-run', kind: 'flag', help: 'list the runs (names, axis values) and exit' },
  { name: 'local', kind: 'number', help: 'worker processes on this machine (no Redis)', default: 1 },
  { name: 'threads', kind: 'number', help: 'OpenMP threads per worker process (default: cores / workers)' },
  {
    name: 'teacher-shards',
    kind: 'number',
    help: 'shard jobs per missing teacher cache (0: each run computes its own; default: one per worker, or 2 with --queue)',
  },
  ...common,
];

const reportOptions: readonly OptionSpec[] = [
  { name: 'out', kind: 'string', help: 'markdown file to write (default: <store>/<grid name>-report.md)' },
  {
    name: 'baseline',
    kind: 'string',
    help: 'row (experiment label) the paired gains are measured against (default: the first)',
  },
  ...common,
];

async function expand(file: string) {
  const { expandGrid } = await import('../../run/sweep-grid.js');
  return expandGrid(file);
}

export const sweepCommand: Command = {
  name: 'sweep',
  summary: SUMMARIES.sweep,
  async run(argv) {
    const sub = argv[0] === 'status' || argv[0] === 'report' ? argv[0] : 'run';
    const rest = sub === 'run' ? argv : argv.slice(1);
    const files: string[] = [];
    const specs = sub === 'report' ? reportOptions : sub === 'status' ? common : runOptions;
    const o = parseOptions(rest, specs, `sweep${sub === 'run' ? '' : ` ${sub}`}`, files);
    if (o['help'] === true) {
      console.log(
        `usage: retort sweep <grid.yaml> [options]\n       retort sweep status <grid.yaml> [--store] [--queue] [--only]\n       retort sweep report <grid.yaml> [--store] [--out] [--baseline] [--only]\n\n${helpText(`sweep${sub === 'run' ? '' : ` ${sub}`}`, SUMMARIES.sweep, specs)}`,
      );
      return;
    }
    if (files.length !== 1)
      throw new Error(`retort sweep: give one grid file (got ${files.length}); see --help`);
    let runs = await expand(files[0]!);
    if (typeof o['only'] === 'string') {
      const { filterRuns } = await import('../../run/sweep-grid.js');
      runs = filterRuns(runs, o['only'], `retort sweep --only (${files[0]})`);
    }
    const { openStore } = await import('../../run/sweep-store.js');
    const store = openStore(String(o['store']));
    const queue = typeof o['queue'] === 'string' ? o['queue'] : undefined;
    const queueName = String(o['queue-name']);
    if (sub === 'status') {
      const { storeStatus } = await import('../../run/sweep.js');
      console.log(storeStatus(runs, store).text);
      if (queue) {
        const { queueStatus } = await import('../../run/sweep-queue.js');
        const q = await queueStatus(queue, queueName);
        console.log(
          `queue ${queueName}: ${Object.entries(q.counts)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        );
        for (const a of q.active) {
          const p = a.progress as
            | { done?: number; total?: number; worker?: string; seconds?: number }
            | number;
          const txt =
            typeof p === 'object' && p !== null && p.done !== undefined
              ? `epoch ${p.done}/${p.total} on ${p.worker}, ~${Math.round((p.seconds ?? 0) * ((p.total ?? 0) - p.done))} s left`
              : 'starting';
          console.log(`  active ${a.id}: ${txt}`);
        }
        for (const f of q.failed) console.log(`  failed ${f.id}: ${f.reason}`);
      }
      return;
    }
    if (sub === 'report') {
      const { sweepTable } = await import('../../run/sweep.js');
      const { loadGrid } = await import('../../run/sweep-grid.js');
      const { grid } = loadGrid(files[0]!);
      const table = sweepTable(
        runs,
        store,
        typeof o['baseline'] === 'string' ? { baseline: o['baseline'] } : {},
      );
      const out = typeof o['out'] === 'string' ? o['out'] : join(store.runsRoot, `${grid.name}-report.md`);
      const text = `# Sweep ${grid.name}\n\nGrid ${files[0]}, run store ${store.description}; test top-1 (%) over seeds, Δ paired by seed.\n\n${table}\n`;
      writeFileAtomic(out, text);
      console.log(text);
      process.stderr.write(`report: ${out}\n`);
      return;
    }
    if (o['dry-run'] === true) {
      const { gridTable } = await import('../../run/sweep-grid.js');
      console.log(gridTable(runs));
      return;
    }
    const workers = Number(o['local']);
    if (!Number.isInteger(workers) || workers < 1)
      throw new Error(`retort sweep: --local must be a whole number ≥ 1`);
    const shards = o['teacher-shards'] !== undefined ? Number(o['teacher-shards']) : queue ? 2 : workers;
    if (!Number.isInteger(shards) || shards < 0)
      throw new Error('retort sweep: --teacher-shards must be a whole number ≥ 0');
    await import('retort-kd-native');
    const { planJobs, runLocal, threadsPer } = await import('../../run/sweep.js');
    const jobs = await planJobs(runs, store, { teacherShards: shards });
    const finished = runs.length - jobs.filter((j) => j.kind === 'run').length;
    process.stderr.write(
      `sweep: ${runs.length} runs, ${finished} already finished in ${store.description}; ${jobs.length} jobs\n`,
    );
    if (queue) {
      const { submitJobs } = await import('../../run/sweep-queue.js');
      const r = await submitJobs(jobs, queue, store.runsRoot, { queueName });
      process.stderr.write(
        `queue ${queueName} at ${queue}: ${r.added.length} added, ${r.existing.length} already there, ${r.retried.length} failed ones retried; start workers with: retort worker --queue ${queue}${queueName !== 'retort' ? ` --queue-name ${queueName}` : ''}\n`,
      );
      console.log(JSON.stringify(r));
      return;
    }
    const threads = o['threads'] !== undefined ? Number(o['threads']) : threadsPer(workers);
    const ctl = new AbortController();
    process.once('SIGINT', () => ctl.abort());
    const s = await runLocal(jobs, store, { workers, threads, signal: ctl.signal });
    process.stderr.write(
      `sweep: ${s.done.length} jobs done, ${s.failed.length} failed, ${(s.seconds / 60).toFixed(1)} min wall\n`,
    );
    console.log(JSON.stringify({ done: s.done.length, failed: s.failed, seconds: s.seconds }));
    if (s.failed.length > 0)
      throw new Error(`sweep: ${s.failed.length} job(s) failed: ${s.failed.map((f) => f.id).join(', ')}`);
  },
};
