/**
 * Inference latency and throughput of a model in the current tfjs backend: `warmup` untimed runs
 * (first calls build oneDNN primitives and fill the buffer pool), then `repeats` timed runs of one
 * batch, reporting the median (robust to a stray slow run on a shared machine) and the throughput
 * it implies. Each run reads the output back, so asynchronous backends are timed to completion.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

export interface Latency {
  batch: number;
  /** Median milliseconds per batch. */
  medianMs: number;
  minMs: number;
  /** Images per second at the median. */
  throughput: number;
  repeats: number;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function measureLatency(
  model: tfl.LayersModel,
  batch: number,
  opts: { warmup?: number; repeats?: number } = {},
): Latency {
  const shape = (model.inputs[0]!.shape.slice(1) as number[]).map((d) => d ?? 1);
  const x = tf.randomNormal([batch, ...shape], 0, 1, 'float32', 1);
  const run = () => tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
  for (let i = 0; i < (opts.warmup ?? 3); i++) run();
  const times: number[] = [];
  for (let i = 0; i < (opts.repeats ?? 10); i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  x.dispose();
  const med = median(times);
  return {
    batch,
    medianMs: med,
    minMs: Math.min(...times),
    throughput: (1000 * batch) / med,
    repeats: times.length,
  };
}

/** The same measurement for an ONNX model in onnxruntime-node (CPU), input `input` NHWC. */
export async function measureOrtLatency(
  bytes: Uint8Array,
  shape: readonly number[],
  batch: number,
  opts: { warmup?: number; repeats?: number; threads?: number } = {},
): Promise<Latency> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(bytes, {
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    graphOptimizationLevel: 'all',
  });
  const n = batch * shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const feeds = { input: new ort.Tensor('float32', data, [batch, ...shape]) };
  for (let i = 0; i < (opts.warmup ?? 3); i++) await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < (opts.repeats ?? 10); i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  await session.release();
  const med = median(times);
  return {
    batch,
    medianMs: med,
    minMs: Math.min(...times),
    throughput: (1000 * batch) / med,
    repeats: times.length,
  };
}
