#!/usr/bin/env node
// The `retort` command. An installed package runs its compiled JavaScript (dist/). A Retort source
// checkout (src/ present) runs the TypeScript sources through tsx, a development dependency there,
// with the workspace packages resolved to their sources too, so that a dist/ left behind can never
// shadow newer code.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
if (existsSync(source)) {
  const args = ['--conditions=retort-source', '--import', 'tsx', source, ...process.argv.slice(2)];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
