/**
 * The tfjs side of bench/engine.ts: one training or inference step of the KD tutorial models on the
 * current tfjs backend, timing of steps, and a per-kernel profile of one training step.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Adam, buildModel, modelStats } from 'retort-kd';

/** The KD tutorial's two models and the zoo families users train (RepDistiller's CIFAR zoo). */
export const MODEL_NAMES = [
  'deepnn',
  'lightnn',
  'resnet8',
  'resnet20',
  'resnet8x4',
  'resnet32x4',
  'wrn_16_2',
  'mobilenetv2',
  'shufflenetv2',
] as const;
export type ModelName = (typeof MODEL_NAMES)[number];
export type Mode = 'train' | 'infer';
/** tfjs: tf.train.adam (a dozen elementwise kernels per variable); retort: the fused RetortAdam. */
export type AdamImpl = 'tfjs' | 'retort';

export const MODEL_LABEL: Record<ModelName, string> = {
  deepnn: 'DeepNN',
  lightnn: 'LightNN',
  resnet8: 'ResNet-8',
  resnet20: 'ResNet-20',
  resnet8x4: 'ResNet-8x4',
  resnet32x4: 'ResNet-32x4',
  wrn_16_2: 'WRN-16-2',
  mobilenetv2: 'MobileNetV2',
  shufflenetv2: 'ShuffleNetV2',
};

/** Forward multiply-adds per image of `model` at 32x32x3 and 10 classes (measure/modelStats). */
export function forwardMacs(model: ModelName): number {
  const m = build(model, 0);
  try {
    return modelStats(m).macs;
  } finally {
    m.dispose();
  }
}

function build(model: ModelName, seed: number): tfl.LayersModel {
  return buildModel(model, { inputShape: [32, 32, 3], numClasses: 10, seed });
}

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
  const m: tfl.LayersModel = build(model, seed);
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

/** One convolution or matmul kernel at one shape: calls, time and achieved rate. */
export interface ShapeTotal {
  name: string;
  /** e.g. 'x 128x32x32x16 w 3x3x16x16 s1' */
  shape: string;
  calls: number;
  ms: number;
  gflop: number;
  gflops: number;
}

/** Kernel groups of a step, ms. */
export type KernelGroup = 'conv' | 'matmul' | 'batchnorm' | 'elementwise' | 'pool' | 'layout' | 'other';

export interface StepProfile {
  model: ModelName;
  /** Wall time of the profiled step, ms. */
  wallMs: number;
  /** Sum of all kernel times, ms (ops that only run other kernels, `*__op`, not counted). */
  kernelMs: number;
  kernels: KernelTotal[];
  shapes: ShapeTotal[];
  groups: Record<KernelGroup, number>;
}

const CONV_FWD = new Set(['Conv2D', 'FusedConv2D']);
const DW_FWD = new Set(['DepthwiseConv2dNative', 'FusedDepthwiseConv2D']);

/** FLOPs (2 per multiply-add) of a convolution or matmul kernel call from its shapes, else null. */
export function kernelFlops(
  name: string,
  ins: readonly (readonly number[])[],
  out: readonly number[],
): number | null {
  const size = (s: readonly number[] | undefined) => (s ?? []).reduce((a, b) => a * b, 1);
  if (CONV_FWD.has(name) && ins[1]?.length === 4) {
    const [kh, kw, ci] = ins[1]!;
    return 2 * size(out) * kh! * kw! * ci!;
  }
  if (DW_FWD.has(name) && ins[1]?.length === 4) return 2 * size(out) * ins[1]![0]! * ins[1]![1]!;
  if (name === 'Conv2DBackpropInput' && ins[1]?.length === 4) {
    // The forward conv's multiply-adds: dy [N, Ho, Wo, Co] x kh x kw x Ci (strides shrink dy, not dx).
    const [kh, kw, ci] = ins[1]!;
    return 2 * size(ins[0]) * kh! * kw! * ci!;
  }
  if (name === 'Conv2DBackpropFilter' && ins[1]?.length === 4 && out.length === 4) {
    const [kh, kw, ci] = out;
    return 2 * size(ins[1]) * kh! * kw! * ci!;
  }
  if (name === 'DepthwiseConv2dNativeBackpropInput' && ins[1]?.length === 4)
    return 2 * size(ins[0]) * ins[1]![0]! * ins[1]![1]!;
  if (name === 'DepthwiseConv2dNativeBackpropFilter' && ins[1]?.length === 4 && out.length === 4)
    return 2 * size(ins[1]) * out[0]! * out[1]!;
  if ((name === 'BatchMatMul' || name === '_FusedMatMul') && ins[0] && ins[1]) {
    // a [B, M, K] (or its transpose), b [B, K, N]: size(a) * size(b) = B^2 M N K^2, size(out) = B M N.
    const b = ins[0].length === 3 ? ins[0][0]! : 1;
    const k = Math.sqrt((size(ins[0]) * size(ins[1])) / (size(out) * b));
    return 2 * size(out) * k;
  }
  return null;
}

function groupOf(name: string): KernelGroup {
  if (/Conv2D|Conv2d/.test(name)) return 'conv';
  if (/MatMul/.test(name)) return 'matmul';
  if (/BatchNorm/.test(name)) return 'batchnorm';
  if (/Pool/.test(name)) return 'pool';
  if (/^(Transpose|Reshape|Cast|Identity|Concat|Slice|Pad|PadV2|Tile|Pack|Unpack|GatherV2|Fill)$/.test(name))
    return 'layout';
  if (
    /^(Add|AddN|Sub|Multiply|RealDiv|Relu|Relu6|Step|Neg|Square|Sqrt|Rsqrt|Exp|Log|Maximum|Minimum|Sum|Mean|Max|Min|Prod|Softmax|Sigmoid|Tanh|Elu|LeakyRelu|Pow|Abs|Reciprocal|SquaredDifference|ZerosLike|OnesLike|Select|Greater|Less|Equal|LogicalNot|Sign|ClipByValue|RetortAdamUpdate|RetortSgdUpdate)$/.test(
      name,
    )
  )
    return 'elementwise';
  return 'other';
}

const dims = (s: readonly number[] | undefined) => (s ?? []).join('x');

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
    const byShape = new Map<string, ShapeTotal>();
    const groups: Record<KernelGroup, number> = {
      conv: 0,
      matmul: 0,
      batchnorm: 0,
      elementwise: 0,
      pool: 0,
      layout: 0,
      other: 0,
    };
    let kernelMs = 0;
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      // tfjs records an op that runs other kernels (fusedConv2d__op) beside those kernels: its time
      // is theirs plus a little dispatch, so it counts in neither the sum nor the groups.
      const nested = k.name.endsWith('__op');
      const t = byName.get(k.name) ?? { name: k.name, calls: 0, ms: 0 };
      t.calls++;
      t.ms += ms;
      byName.set(k.name, t);
      if (nested) continue;
      kernelMs += ms;
      groups[groupOf(k.name)] += ms;
      const ins = (k.inputShapes ?? []) as number[][];
      const out = ((k.outputShapes ?? [])[0] ?? []) as number[];
      const flops = kernelFlops(k.name, ins, out);
      if (flops !== null) {
        const shape = `${ins.map(dims).join(' ')} -> ${dims(out)}`;
        const key = `${k.name} ${shape}`;
        const st = byShape.get(key) ?? { name: k.name, shape, calls: 0, ms: 0, gflop: 0, gflops: 0 };
        st.calls++;
        st.ms += ms;
        st.gflop += flops / 1e9;
        st.gflops = st.ms > 0 ? st.gflop / (st.ms / 1000) : 0;
        byShape.set(key, st);
      }
    }
    const kernels = [...byName.values()].sort((a, b) => b.ms - a.ms);
    const shapes = [...byShape.values()].sort((a, b) => b.ms - a.ms);
    return { model, wallMs, kernelMs, kernels, shapes, groups };
  } finally {
    cell.dispose();
  }
}
