/**
 * The tfjs side of bench/engine.ts: one training or inference step of the KD tutorial models on the
 * current tfjs backend, timing of steps, and a per-kernel profile of one training step.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Adam, buildModel } from 'retort-kd';

export type ModelName = 'deepnn' | 'lightnn';
export type Mode = 'train' | 'infer';
/** tfjs: tf.train.adam (a dozen elementwise kernels per variable); retort: the fused RetortAdam. */
export type AdamImpl = 'tfjs' | 'retort';

export const MODEL_LABEL: Record<ModelName, string> = { deepnn: 'DeepNN', lightnn: 'LightNN' };

/** A model with fixed random data and a step function; `dispose` frees all of it. */
export interface Cell {
  readonly model: ModelName;
  readonly mode: Mode;
  readonly batch: number;
  /** Runs one step to completion (a host read). Returns the loss for `train`, else NaN. */
  step(): number;
  dispose(): void;
}

/**
 * Builds `model` with PyTorch-default init, a random batch [batch, 32, 32, 3] and random labels.
 * train: `optimizer.minimize` of softmax cross-entropy on `model.apply(x, {training: true})` (dropout
 * on) with tf.train.adam(1e-3), then a read of the loss. infer: `model.predict` of the whole batch
 * inside tidy, then a read of the logits. `adam: 'retort'` trains with retort's fused Adam instead.
 */
export function makeCell(
  model: ModelName,
  mode: Mode,
  batch: number,
  adam: AdamImpl = 'tfjs',
  seed = 0,
): Cell {
  const m: tfl.LayersModel = buildModel(model, { seed });
  const x = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', seed + 101);
  const labels = tf.tidy(() =>
    tf.cast(tf.oneHot(tf.randomUniform([batch], 0, 10, 'int32', seed + 102) as tf.Tensor1D, 10), 'float32'),
  );
  let step: () => number;
  let opt: tf.Optimizer | null = null;
  if (mode === 'train') {
    const optimizer: tf.Optimizer = adam === 'tfjs' ? tf.train.adam(1e-3) : new Adam({ lr: 1e-3 });
    opt = optimizer;
    // Only this model's weights (minimize would otherwise take every trainable variable in the engine).
    const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
    step = () => {
      const loss = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(labels, m.apply(x, { training: true }) as tf.Tensor),
        true,
        vars,
      );
      if (loss === null) throw new Error(`${MODEL_LABEL[model]} train step: minimize returned no loss`);
      const v = loss.dataSync()[0]!;
      loss.dispose();
      return v;
    };
  } else {
    step = () => {
      tf.tidy(() => {
        (m.predict(x, { batchSize: batch }) as tf.Tensor).dataSync();
      });
      return Number.NaN;
    };
  }
  return {
    model,
    mode,
    batch,
    step,
    dispose: () => {
      opt?.dispose();
      tf.dispose([x, labels]);
      m.dispose();
    },
  };
}

/** Wall time of `n` consecutive steps, in ms, and the loss after the last one. */
export function timeSteps(cell: Cell, n: number): { ms: number; loss: number } {
  let loss = Number.NaN;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) loss = cell.step();
  return { ms: performance.now() - t0, loss };
}

export interface KernelTotal {
  name: string;
  calls: number;
  ms: number;
}

export interface StepProfile {
  model: ModelName;
  /** Wall time of the profiled step, ms. */
  wallMs: number;
  /** Sum of all kernel times, ms (a kernel that calls another through the engine counts twice). */
  kernelMs: number;
  kernels: KernelTotal[];
}

/**
 * One training step of `model` at `batch` under tf.profile, after one unprofiled warm-up step.
 * Kernel times are wall times of each kernel call (the backends here are synchronous).
 */
export async function profileTrainStep(
  model: ModelName,
  batch: number,
  adam: AdamImpl,
): Promise<StepProfile> {
  const cell = makeCell(model, 'train', batch, adam);
  try {
    cell.step();
    const t0 = performance.now();
    const info = await tf.profile(() => {
      cell.step();
    });
    const wallMs = performance.now() - t0;
    const byName = new Map<string, KernelTotal>();
    let kernelMs = 0;
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      const t = byName.get(k.name) ?? { name: k.name, calls: 0, ms: 0 };
      t.calls++;
      t.ms += ms;
      kernelMs += ms;
      byName.set(k.name, t);
    }
    const kernels = [...byName.values()].sort((a, b) => b.ms - a.ms);
    return { model, wallMs, kernelMs, kernels };
  } finally {
    cell.dispose();
  }
}
