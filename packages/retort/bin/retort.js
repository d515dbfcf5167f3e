#!/usr/bin/env node
// The `retort` command. An installed package runs its compiled JavaScript (dist/). A Retort source
// checkout (src/ present) runs the TypeScript sources through tsx, a development dependency there,
// in this same process, with the workspace packages resolved to their sources too (the
// "retort-source" export condition), so that a dist/ left behind can never shadow newer code.
import { existsSync } from 'node:fs';
import * as nodeModule from 'node:module';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  // module.register exists from Node 20.6; an installed package never gets here.
  nodeModule.register(
    'data:text/javascript,export async function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, "retort-source"] }); }',
  );
  const tsx = await import('tsx/esm/api');
  tsx.register();
  await import(source.href);
} else {
  await import(new URL('../dist/cli/main.js', import.meta.url).href);
}
