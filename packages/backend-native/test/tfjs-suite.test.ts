/**
 * TensorFlow.js's own op suite (@tensorflow/tfjs-core/dist/tests.js: 265 spec files, ~4,230 jasmine
 * specs) on backend `native`, against the same suite on `cpu` (test/tfjs-suite/run.ts runs one
 * backend per process). A spec that fails on native and passes on cpu fails this test; so does a
 * native kernel that never ran (a stale or missing addon would make this a cpu-vs-cpu run).
 *
 * Exclusions: only tfjs-backend-cpu's own ('computation in worker', which needs a browser worker).
 * The project's own Retort* kernels are not in tfjs's suite; their tests are the other files here.
 * tfjs-layers ships no specs in its npm package (its dist holds no *_test.js files), so there is no
 * layers suite to run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const scratch = mkdtempSync(join(tmpdir(), 'tfjs-suite-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface SuiteRun {
  results: Record<string, { status: string; message?: string }>;
  nativeAvailable: boolean;
  nativeIsa: string | null;
  nativeKernels: string[];
  nativeCalls: Record<string, number>;
}

function runSuite(backend: string): SuiteRun {
  const out = join(scratch, `${backend}.json`);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      join(here, 'tfjs-suite', 'register.mjs'),
      join(here, 'tfjs-suite', 'run.ts'),
      backend,
      out,
    ],
    {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, RETORT_QUIET: '1' },
      maxBuffer: 1 << 26,
      timeout: 300_000,
    },
  );
  assert.equal(r.status, 0, `${backend} suite run: ${r.stderr.slice(-2000)}`);
  return JSON.parse(readFileSync(out, 'utf8')) as SuiteRun;
}

it("tfjs-core's op suite: nothing fails on native that passes on cpu; every native kernel runs", () => {
  const native = runSuite('native');
  const cpu = runSuite('cpu');
  assert.equal(native.nativeAvailable, true, 'the addon is loaded in the native run');
  const names = Object.keys(native.results);
  const count = (r: SuiteRun, s: string) => Object.values(r.results).filter((v) => v.status === s).length;
  // The suite loaded whole (4,230 specs in tfjs-core 4.22, 5 of them disabled upstream with xit).
  assert.ok(names.length >= 4200, `${names.length} specs ran`);
  assert.ok(count(cpu, 'passed') >= 4200, `cpu passed ${count(cpu, 'passed')}`);
  const regressions = names.filter(
    (n) => native.results[n]!.status === 'failed' && cpu.results[n]?.status === 'passed',
  );
  assert.deepEqual(
    regressions.map((n) => `${n}: ${native.results[n]!.message ?? ''}`),
    [],
    'specs failing on native but passing on cpu',
  );
  const notRun = native.nativeKernels.filter((k) => !k.startsWith('Retort') && !(native.nativeCalls[k]! > 0));
  assert.deepEqual(notRun, [], 'standard kernels the suite never ran natively');
  process.stderr.write(
    `tfjs-core suite (addon ${native.nativeIsa}): native ${count(native, 'passed')} passed / ${count(native, 'failed')} failed, cpu ${count(cpu, 'passed')} / ${count(cpu, 'failed')}, ${names.length} specs\n`,
  );
});
