/**
 * Runs TensorFlow.js's op suite (@tensorflow/tfjs-core/dist/tests.js, jasmine) on one backend and
 * writes every spec's result as JSON: `node --import tsx --import ./register.mjs run.ts <backend>
 * <out.json>`. tfjs-backend-cpu's own runner is the model: the same environment shape
 * ({backendName, isDataSync: true}) and the same filter (everything but 'computation in worker',
 * which needs a browser worker). The environment is named 'test' for every backend, so that spec
 * names match between a native run and a cpu run.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [backend, out] = process.argv.slice(2);
if (backend === undefined || out === undefined) throw new Error('usage: run.ts <backend> <out.json>');

// The ES-module build calls `require` where a bundler would have provided it (platform_node.ts).
const require = createRequire(import.meta.url);
(globalThis as { require?: NodeRequire }).require = require;
await import('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js');
await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');

const Jasmine = require('jasmine') as new () => {
  loadConfig(c: object): void;
  exitOnCompletion: boolean;
  env: { addReporter(r: object): void };
  execute(): Promise<unknown>;
};
const runner = new Jasmine();
runner.loadConfig({ random: false, spec_files: [] });
runner.exitOnCompletion = false;

// The backend under test registers itself with the same tfjs-core instance the suite uses.
const native = await import('../../src/index.js');
const util = await import('@tensorflow/tfjs-core/dist/jasmine_util.js');
util.setTestEnvs([{ name: 'test', backendName: backend, isDataSync: true }]);
util.setupTestFilters([], (name: string) => !name.includes('computation in worker'));

type Spec = { fullName: string; status: string; failedExpectations: { message: string }[] };
const results: Record<string, { status: string; message?: string }> = {};
runner.env.addReporter({
  specDone(s: Spec) {
    const message = s.failedExpectations[0]?.message;
    // tfjs has specs with equal names: number the repeats so that every spec keeps its own entry.
    let name = s.fullName;
    for (let i = 2; name in results; i++) name = `${s.fullName} [${i}]`;
    results[name] = { status: s.status, ...(message ? { message: message.slice(0, 300) } : {}) };
  },
});
await import('@tensorflow/tfjs-core/dist/tests.js');
await runner.execute();
writeFileSync(
  out,
  JSON.stringify({
    backend,
    results,
    nativeAvailable: native.nativeAvailable,
    nativeIsa: native.nativeIsa,
    nativeKernels: native.nativeKernelNames,
    nativeCalls: Object.fromEntries(native.nativeCallCounts),
  }),
);
