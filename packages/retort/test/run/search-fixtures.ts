/**
 * What the search tests share: the tiny search file, the retort binary, and a latency table that
 * times nothing (a fake measuring function at a made-up machine fingerprint).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineFingerprint, MeasureFn } from '../../src/search/latency-table.js';

const here = dirname(fileURLToPath(import.meta.url));
export const TINY = resolve(here, '../../../../configs/fashion-mnist/search/tiny.yaml');
export const bin = join(here, '..', '..', 'bin', 'retort.js');

/** Deterministic fake timings: by the key's length (units), 0.05 ms for a call's fixed cost. */
export const fakeMeasure: MeasureFn = async ({ key, what }) =>
  what === 'model' ? 1.5 : what === 'fixed' ? 0.05 : (key ?? '').length / 1000;

export const FP: MachineFingerprint = {
  cpu: 'test cpu',
  arch: 'x64',
  cores: 2,
  flags: [],
  isa: null,
  isaCap: null,
  addon: null,
  nativeThreads: 'default',
  ortThreads: 2,
  node: '20',
  tfjs: '4.22.0',
  onnxruntime: null,
};
