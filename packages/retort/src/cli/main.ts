/** `retort <command> [options]`: each command lives in commands/<name>.ts. */
import { compressCommand } from './commands/compress.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { distillCommand, trainCommand } from './commands/experiment.js';
import { exportCommand } from './commands/export.js';
import { modelsCommand } from './commands/models.js';

export interface Command {
  name: string;
  summary: string;
  run(argv: readonly string[]): Promise<void>;
}

const commands: readonly Command[] = [
  trainCommand,
  distillCommand,
  evalCommand,
  exportCommand,
  compressCommand,
  modelsCommand,
  demoCommand,
];

function usage(): string {
  return ['usage: retort <command> [options]   (retort <command> --help for its options)', '', 'Commands:']
    .concat(commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`))
    .join('\n');
}

async function main(argv: readonly string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage());
    return;
  }
  const cmd = commands.find((c) => c.name === name);
  if (cmd === undefined) {
    throw new Error(`unknown command '${name}' (known: ${commands.map((c) => c.name).join(', ')})`);
  }
  await cmd.run(rest);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`retort: ${(e as Error).message}`);
  process.exitCode = 1;
});
