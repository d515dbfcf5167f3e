/**
 * `retort <command> [options]`: each command lives in commands/<name>.ts and is loaded only when it
 * runs (the compute libraries take ~0.7 s to load; `retort --help`, `--version` and early refusals
 * need none: the summaries come from command.ts, which loads nothing).
 */
import { createRequire } from 'node:module';
import { type Command, type CommandName, SUMMARIES } from './command.js';

interface CommandEntry {
  name: CommandName;
  load(): Promise<Command>;
}

const commands: readonly CommandEntry[] = [
  { name: 'train', load: async () => (await import('./commands/experiment.js')).trainCommand },
  { name: 'distill', load: async () => (await import('./commands/experiment.js')).distillCommand },
  { name: 'eval', load: async () => (await import('./commands/eval.js')).evalCommand },
  { name: 'export', load: async () => (await import('./commands/export.js')).exportCommand },
  { name: 'compress', load: async () => (await import('./commands/compress.js')).compressCommand },
  { name: 'models', load: async () => (await import('./commands/models.js')).modelsCommand },
  { name: 'demo', load: async () => (await import('./commands/demo.js')).demoCommand },
  { name: 'serve', load: async () => (await import('./commands/serve.js')).serveCommand },
  { name: 'report', load: async () => (await import('./commands/report.js')).reportCommand },
  { name: 'sweep', load: async () => (await import('./commands/sweep.js')).sweepCommand },
  { name: 'worker', load: async () => (await import('./commands/worker.js')).workerCommand },
  { name: 'search', load: async () => (await import('./commands/search.js')).searchCommand },
];

function usage(): string {
  return [
    'usage: retort <command> [options]   (retort <command> --help for its options; retort --version)',
    '',
    'Commands:',
  ]
    .concat(commands.map((c) => `  ${c.name.padEnd(10)} ${SUMMARIES[c.name]}`))
    .join('\n');
}

async function main(argv: readonly string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage());
    return;
  }
  if (name === '--version' || name === '-V') {
    // The package's own manifest, two folders up from this file in the sources and in a build.
    const manifest = createRequire(import.meta.url)('../../package.json') as { version: string };
    console.log(manifest.version);
    return;
  }
  const cmd = commands.find((c) => c.name === name);
  if (cmd === undefined) {
    throw new Error(`unknown command '${name}' (known: ${commands.map((c) => c.name).join(', ')})`);
  }
  await (await cmd.load()).run(rest);
}

// `retort models | head` closes the pipe early: that ends the command, it is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`retort: ${(e as Error).message}`);
  process.exitCode = 1;
});
