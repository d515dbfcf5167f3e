/**
 * A short run of the kernel fuzzer (test/fuzz/run.ts): 150 seeded calls per native kernel, each on
 * cpu and on native in a worker process that a crash or a hang cannot take down with it. Every call
 * must agree with cpu within the kernel's tolerance, throw on both, or (hostile calls) be refused
 * by native with an error naming the kernel; and every kernel must have run natively at least once,
 * so a kernel the generators never reach fails here. The long run writes bench/results/kernel-fuzz.md.
 */
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { native } from '../src/binding.js';
import { nativeAvailable, nativeKernelNames, nativeUnavailableReason } from '../src/index.js';
import { nativeKernels } from '../src/kernels/index.js';
import { FUZZERS } from './fuzz/kernels.js';
import { failures, fuzzKernels } from './fuzz/run.js';

describe('kernel fuzz: native against cpu (150 calls per kernel)', () => {
  it('has a case generator for every native kernel', () => {
    assert.deepEqual(FUZZERS.map((f) => f.name).sort(), [...nativeKernelNames].sort());
  });

  it('no finding, crash or hang, and every kernel ran natively', async () => {
    assert.ok(nativeAvailable, `native addon not loaded: ${nativeUnavailableReason}`);
    const tallies = [
      ...(
        await fuzzKernels(nativeKernelNames, 150, { seed: 7, jobs: Math.min(2, availableParallelism()) })
      ).values(),
    ];
    // The kernels registered natively: those the loaded addon has (registerNativeKernels skips others).
    const registered = new Set(
      nativeKernels
        .filter((k) => typeof native?.[k.addonName ?? k.kernelName] === 'function')
        .map((k) => k.kernelName),
    );
    assert.deepEqual(
      {
        findings: tallies
          .filter((t) => failures(t) > 0)
          .map((t) => `${t.kernel}: ${failures(t)} (${t.samples.findings.slice(0, 2).join(' / ')})`),
        neverRanNatively: tallies.filter((t) => registered.has(t.kernel) && t.ran === 0).map((t) => t.kernel),
      },
      { findings: [], neverRanNatively: [] },
    );
  });
});
