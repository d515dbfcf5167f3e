/**
 * `retort search <config>`: the library's `search` (run/search.ts). Candidates train as sweep jobs
 * here (`--local N`) or on `retort worker`s (`--queue redis://...`); progress on stderr, the result
 * as one JSON line on stdout; `--dry-run` prints the space, the constraints and the first
 * candidates with their costs instead.
 */
import { join } from 'node:path';
import { assertRunFree } from '../../train/run-dir.js';
import { helpText, type OptionSpec, parseOptions } from '../args.js';
import { type Command, SUMMARIES } from '../command.js';

const options: readonly OptionSpec[] = [
  {
    name: 'set',
    kind: 'list',
    help: 'override a config key, e.g. --set search.strategy.cycles=32 (repeatable)',
  },
  {
    name: 'runs',
    kind: 'string',
    help: 'folder that holds run folders (the candidates, <name>/search/)',
    default: 'runs',
  },
  { name: 'local', kind: 'number', help: 'worker processes training candidates on this machine', default: 1 },
  { name: 'threads', kind: 'number', help: 'OpenMP threads per worker process (default: cores / workers)' },
  {
    name: 'queue',
    kind: 'string',
    help: 'Redis address (redis://host:port): train candidates on retort workers',
  },
  { name: 'queue-name', kind: 'string', help: 'BullMQ queue name', default: 'retort' },
  { name: 'resume', kind: 'flag', help: 'continue the search from <runs>/<name>/search/state.json' },
  {
    name: 'force',
    kind: 'flag',
    help: 'start the search again although its state exists (finished candidate runs are reused)',
  },
  {
    name: 'dry-run',
    kind: 'flag',
    help: 'print the space size, the constraints and the first candidates with their costs; train nothing',
  },
  { name: 'help', kind: 'flag', help: 'show this help' },
];

export const searchCommand: Command = {
  name: 'search',
  summary: SUMMARIES.search,
  async run(argv) {
    const files: string[] = [];
    const o = parseOptions(argv, options, 'search', files);
    if (o['help'] === true) {
      console.log(
        `usage: retort search <experiment.yaml> [options]\n\n${helpText('search', SUMMARIES.search, options)}`,
      );
      return;
    }
    if (files.length !== 1)
      throw new Error(`retort search: give one experiment file (got ${files.length}); see --help`);
    const workers = Number(o['local']);
    if (!Number.isInteger(workers) || workers < 1)
      throw new Error('retort search: --local must be a whole number ≥ 1');
    const runs = String(o['runs']);
    const { readConfigMapping } = await import('../../config/load.js');
    const name = readConfigMapping(files[0]!, o['set'] as string[])['name'];
    // Before the compute libraries load: a search another process is running (it holds
    // <runs>/<name>/search/lock) fails now.
    if (typeof name === 'string' && o['dry-run'] !== true) assertRunFree(join(runs, name), 'search');
    await import('retort-kd-native');
    const { search } = await import('../../run/search.js');
    const { constraintsText } = await import('../../search/search-report.js');
    const ctl = new AbortController();
    process.once('SIGINT', () => {
      process.stderr.write('search: stopping after the running batch is cut short; --resume continues\n');
      ctl.abort();
    });
    const queue = typeof o['queue'] === 'string' ? o['queue'] : undefined;
    const r = await search(files[0]!, {
      runsRoot: runs,
      overrides: o['set'] as string[],
      local: workers,
      ...(o['threads'] !== undefined ? { threads: Number(o['threads']) } : {}),
      ...(queue !== undefined ? { queue, queueName: String(o['queue-name']) } : {}),
      resume: o['resume'] === true,
      force: o['force'] === true,
      dryRun: o['dry-run'] === true,
      signal: ctl.signal,
    });
    if (r.firstCandidates) {
      const rows = r.firstCandidates.map(
        (p) =>
          `| ${p.key} | ${p.cost.latencyMs.toFixed(4)} | ${p.cost.params.toLocaleString('en-US')} | ${p.cost.macs.toLocaleString('en-US')} |`,
      );
      console.log(
        [
          `space: ${r.spaceSize.toLocaleString('en-US')} candidates; latency ${r.setting.runtime} batch ${r.setting.batch}`,
          `constraints: ${constraintsText(r.constraints)}${r.reference ? ` (${r.reference.model}: ${r.reference.predictedMs.toFixed(4)} ms predicted, ${r.reference.measuredMs.toFixed(4)} ms measured)` : ''}`,
          `proxy accuracy: ${r.accuracySplit} top-1`,
          `first ${r.firstCandidates.length} candidates:`,
          '',
          '| key | latency (ms) | params | MACs |',
          '| --- | ---: | ---: | ---: |',
          ...rows,
        ].join('\n'),
      );
      return;
    }
    console.log(
      JSON.stringify({
        name: r.name,
        dir: r.dir,
        done: r.done,
        evaluations: r.history.length,
        seconds: r.seconds,
        best: r.best ? { key: r.best.key, accuracy: r.best.accuracy, cost: r.best.cost } : null,
        front: r.front.map((e) => e.key),
        ...(r.files ? { files: r.files } : {}),
      }),
    );
    if (!r.done) process.exitCode = 130;
    else if (!r.best)
      throw new Error(`search ${r.name}: no candidate finished its proxy training; see ${r.files?.md}`);
  },
};
