/**
 * Inference latency and throughput of a model in the current tfjs backend: `warmup` untimed runs
 * (first calls build oneDNN primitives and fill the buffer pool), then `repeats` timed runs of one
 * batch, reporting the median (robust to a stray slow run on a shared machine) and the throughput
 * it implies. Each run reads the output back, so asynchronous backends are timed to completion.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { InferenceSession } from 'onnxruntime-node';
import { loadOrt } from '../util/ort.js';

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
  return latencyOf(batch, times);
}

export interface OrtTimingOptions {
  /** Untimed runs per model before timing. Default 3. */
  warmup?: number;
  /** Timed runs per model and round. Default 10. */
  repeats?: number;
  /** Rounds; each times every model once, alternating the order. Default 1. */
  rounds?: number;
  /** Intra-op threads (default: onnxruntime's, one per physical core). */
  threads?: number;
}

function latencyOf(batch: number, times: readonly number[]): Latency {
  const med = median(times);
  return {
    batch,
    medianMs: med,
    minMs: Math.min(...times),
    throughput: (1000 * batch) / med,
    repeats: times.length,
  };
}

/**
 * Latency of several ONNX models (one input, `[batch, ...shape]`: NHWC for Retort's exports) in onnxruntime-node
 * (CPU), timed interleaved in one process so that they see the same machine load: each round
 * times every model (alternating which goes first) with `warmup` untimed then `repeats` timed
 * runs; medians are over all rounds' runs of a model. All sessions get the same options (all
 * graph optimizations, sequential execution, the same thread count). Only one session is alive
 * at a time: a live session's idle intra-op threads slowed the other (on 2 busy cores, int8
 * ResNet-8 at batch 64 took 12.7 ms next to a live fp32 session, 9.1 ms with it released).
 */
export async function measureOrtLatencies(
  models: readonly Uint8Array[],
  shape: readonly number[],
  batch: number,
  opts: OrtTimingOptions = {},
): Promise<Latency[]> {
  const ort = await loadOrt('ONNX latency');
  const options: InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
  };
  const n = batch * shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const x = new ort.Tensor('float32', data, [batch, ...shape]);
  const times = models.map((): number[] => []);
  for (let r = 0; r < (opts.rounds ?? 1); r++) {
    const order = [...models.keys()];
    if (r % 2 === 1) order.reverse();
    for (const k of order) {
      const session = await ort.InferenceSession.create(models[k]!, options);
      const feeds = { [session.inputNames[0]!]: x };
      try {
        for (let i = 0; i < (opts.warmup ?? 3); i++) await session.run(feeds);
        for (let i = 0; i < (opts.repeats ?? 10); i++) {
          const t0 = performance.now();
          await session.run(feeds);
          times[k]!.push(performance.now() - t0);
        }
      } finally {
        await session.release();
      }
    }
  }
  return times.map((t) => latencyOf(batch, t));
}

/** The same measurement for one ONNX model in onnxruntime-node (CPU), input `input` NHWC. */
export async function measureOrtLatency(
  bytes: Uint8Array,
  shape: readonly number[],
  batch: number,
  opts: OrtTimingOptions = {},
): Promise<Latency> {
  return (await measureOrtLatencies([bytes], shape, batch, opts))[0]!;
}
