/**
 * Elementwise kernels, native vs the cpu JS kernels, on the large shapes of a DeepNN training step
 * (activations [128, 32, 32, C]) and of an Adam-style update ([2048, 512]).
 *
 *   node --import tsx bench/elementwise.ts [--reps N]
 *
 * Each row: median wall time of N calls (after 2 untimed warm-up calls) on each backend, output
 * disposed after every call so that the native buffer pool recycles as in training. Inputs are made
 * once per backend. A row whose native path did not run (fallback) is marked.
 */

import * as tf from '@tensorflow/tfjs-core';
import { nativeAvailable, nativeCallCounts, nativeUnavailableReason } from 'retort-kd-native';

const repsArg = process.argv.indexOf('--reps');
const reps = repsArg > 0 ? Number(process.argv[repsArg + 1]) : 9;

interface Row {
  kernel: string;
  label: string;
  shapes: number[][];
  fn: (...xs: tf.Tensor[]) => tf.Tensor;
}
const act = [128, 32, 32, 128];
const upd = [2048, 512];
const rows: Row[] = [
  { kernel: 'Relu', label: 'relu', shapes: [act], fn: (x) => tf.relu(x!) },
  { kernel: 'Step', label: 'step (relu grad mask)', shapes: [act], fn: (x) => tf.step(x!) },
  { kernel: 'Multiply', label: 'mul same shape', shapes: [act, act], fn: (a, b) => tf.mul(a!, b!) },
  {
    kernel: 'Add',
    label: 'bias add [...,64]+[64]',
    shapes: [[128, 32, 32, 64], [64]],
    fn: (a, b) => tf.add(a!, b!),
  },
  { kernel: 'Multiply', label: 'mul', shapes: [upd, upd], fn: (a, b) => tf.mul(a!, b!) },
  { kernel: 'Multiply', label: 'mul by scalar', shapes: [upd, []], fn: (a, b) => tf.mul(a!, b!) },
  { kernel: 'Add', label: 'add', shapes: [upd, upd], fn: (a, b) => tf.add(a!, b!) },
  { kernel: 'RealDiv', label: 'div', shapes: [upd, upd], fn: (a, b) => tf.div(a!, b!) },
  { kernel: 'Sqrt', label: 'sqrt', shapes: [upd], fn: (x) => tf.sqrt(x!) },
];

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median ms of `reps` calls of row.fn on `backend`, and how many of them ran natively. */
function time(backend: string, row: Row): { ms: number; native: number } {
  tf.setBackend(backend);
  // positive inputs so that sqrt/div stay finite
  const xs = row.shapes.map((s) => tf.randomUniform(s, 0.5, 2, 'float32', 1));
  const before = nativeCallCounts.get(row.kernel) ?? 0;
  const ts: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    const t0 = performance.now();
    const y = row.fn(...xs);
    const t1 = performance.now();
    y.dispose();
    if (i >= 2) ts.push(t1 - t0);
  }
  for (const x of xs) x.dispose();
  return { ms: median(ts), native: (nativeCallCounts.get(row.kernel) ?? 0) - before };
}

if (!nativeAvailable) console.error(`native addon unavailable: ${nativeUnavailableReason}`);
console.log(`| kernel | case | shapes | cpu ms | native ms | speed-up |`);
console.log(`|---|---|---|---:|---:|---:|`);
for (const row of rows) {
  const cpu = time('cpu', row);
  const nat = time('native', row);
  const fell = nat.native === 0 ? ' (fallback)' : '';
  const shapes = row.shapes.map((s) => `[${s.join(',')}]`).join(' ');
  console.log(
    `| ${row.kernel} | ${row.label}${fell} | ${shapes} | ${cpu.ms.toFixed(2)} | ${nat.ms.toFixed(2)} | ${(cpu.ms / nat.ms).toFixed(1)}x |`,
  );
}
