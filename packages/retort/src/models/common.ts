/**
 * Shared parts of the model zoo (resnet.ts, wrn.ts, vgg.ts, mobilenetv2.ts, shufflenetv2.ts): the
 * options every builder takes, the feature-tap description, option checks, and a small layer
 * builder that reproduces PyTorch's conv padding arithmetic and initialisers on tfjs-layers (NHWC).
 *
 * Padding. A PyTorch conv with kernel k, stride s and padding k // 2 becomes:
 * - s = 1: tfjs 'same' (for odd k that is the same symmetric padding, k // 2 on each side);
 * - s > 1, k > 1: an explicit `zeroPadding2d` named `<conv>.pad` (k // 2 on every side) and a
 *   'valid' conv. tfjs 'same' would pad (0 before, 1 after) on even sizes where PyTorch pads (1, 1),
 *   which shifts the sampling grid by one pixel: parameter counts would agree, outputs would not;
 * - k = 1 (padding 0): 'valid', which samples pixels 0, s, 2s, ... exactly like PyTorch.
 *
 * Batch norm is tfjs `batchNormalization` with momentum 0.9 (PyTorch's momentum 0.1: tfjs keeps
 * 0.9 of the old running value) and epsilon 1e-5, gamma 1, beta 0, running mean 0, variance 1,
 * trained through the fused kernel of batchnorm.ts, which also updates the running variance with
 * the unbiased batch variance as PyTorch does (tfjs's own layer uses the biased one).
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { fusedBatchNorm } from './batchnorm.js';

/** Options every zoo builder takes. */
export interface ZooOptions {
  /** Input image [H, W, C] (NHWC without the batch axis). Default [32, 32, 3]. */
  inputShape?: readonly [number, number, number];
  /** Number of classes (logits). Default 100 (CIFAR-100, as RepDistiller). */
  numClasses?: number;
  /** Base seed of the initialisers (the k-th initialiser uses seed + k); unseeded when absent. */
  seed?: number;
  /** Model name; defaults to the zoo name. */
  name?: string;
}

/** One entry of RepDistiller's `is_feat` feature list, as layer names of the tfjs model. */
export interface StageTap {
  /** Layer whose output RepDistiller returns with preact=False: [N, h, w, c] maps, [N, c] vector. */
  output: string;
  /** Layer whose output it returns with preact=True (the same layer where the reference has none). */
  preact: string;
}

/** Where feature-based distillation methods find their features, by layer name. */
export interface ModelTaps {
  /** In RepDistiller's order: stem, each stage, pooled vector (its `feats[i]` is `stages[i]`). */
  stages: StageTap[];
  /** RepDistiller's get_bn_before_relu() (used by OFD); empty where the reference has none. */
  bnBeforeRelu: string[];
}

export type Sym = tfl.SymbolicTensor;
type Initializer =
  | ReturnType<typeof tfl.initializers.randomNormal>
  | ReturnType<typeof tfl.initializers.zeros>;

let zeroInit = 0;

/**
 * Runs `build` with every random initializer of the zoo replaced by zeros: for parameter counts and
 * layer summaries, where weight values are never read (drawing VGG-19's 20M random weights in
 * JavaScript takes over a second).
 */
export function withZeroInit<T>(build: () => T): T {
  zeroInit++;
  try {
    return build();
  } finally {
    zeroInit--;
  }
}

/** tfjs's randomNormal initializer, or zeros inside withZeroInit. */
export function randomNormalInit(args: Parameters<typeof tfl.initializers.randomNormal>[0]): Initializer {
  return zeroInit > 0 ? tfl.initializers.zeros() : tfl.initializers.randomNormal(args);
}

/** tfjs's randomUniform initializer, or zeros inside withZeroInit. */
export function randomUniformInit(args: Parameters<typeof tfl.initializers.randomUniform>[0]): Initializer {
  return zeroInit > 0 ? tfl.initializers.zeros() : tfl.initializers.randomUniform(args);
}

/** How convolutions are initialised (biases, where present, are zero for 'kaiming-fan-out'). */
export type ConvInit =
  /** N(0, 2 / (k * k * out_channels)): RepDistiller's ResNet/WRN/VGG/MobileNetV2 (kaiming fan_out). */
  | 'kaiming-fan-out'
  /** PyTorch's Conv2d default: U(+-1 / sqrt(fan_in)) for weight and bias, fan_in = in/groups * k * k. */
  | 'torch-default';

/** How a linear layer is initialised. */
export type LinearInit =
  /** PyTorch's Linear default: U(+-1 / sqrt(in_features)) for weight and bias. */
  | 'torch-default'
  /** PyTorch's default weight, zero bias (RepDistiller's WRN). */
  | 'torch-default-zero-bias'
  /** N(0, 0.01) weight, zero bias (RepDistiller's VGG and MobileNetV2). */
  | 'normal-0.01';

/** Checks and fills the common options; `minSize` is the smallest H and W the family handles. */
export function resolveOptions(
  opts: ZooOptions,
  family: string,
  minSize: number,
): { shape: [number, number, number]; numClasses: number } {
  const [h, w, c] = opts.inputShape ?? [32, 32, 3];
  for (const [k, v] of [
    ['H', h],
    ['W', w],
    ['C', c],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`${family}: inputShape ${k} must be a positive integer, got ${String(v)}`);
  }
  if (h < minSize || w < minSize)
    throw new Error(`${family}: inputShape H and W must be >= ${minSize}, got ${h}x${w}`);
  const numClasses = opts.numClasses ?? 100;
  if (!Number.isInteger(numClasses) || numClasses < 1)
    throw new Error(`${family}: numClasses must be a positive integer, got ${String(numClasses)}`);
  return { shape: [h, w, c], numClasses };
}

/** Per-example shape [H, W, C] of a symbolic NHWC tensor. */
export function hwc(x: Sym): [number, number, number] {
  const [, h, w, c] = x.shape;
  if (typeof h !== 'number' || typeof w !== 'number' || typeof c !== 'number')
    throw new Error(`expected a [N, H, W, C] tensor with known H, W, C, got [${x.shape.join(', ')}]`);
  return [h, w, c];
}

/** Builds layers with PyTorch's padding and initialisation; one instance per model. */
export class Net {
  private count = 0;

  constructor(
    private readonly seed: number | undefined,
    private readonly convInit: ConvInit,
  ) {}

  private nextSeed(): { seed?: number } {
    return this.seed === undefined ? {} : { seed: this.seed + this.count++ };
  }

  private normal(stddev: number): Initializer {
    return randomNormalInit({ mean: 0, stddev, ...this.nextSeed() });
  }

  private uniform(bound: number): Initializer {
    return randomUniformInit({ minval: -bound, maxval: bound, ...this.nextSeed() });
  }

  /** Pads like PyTorch's padding = k // 2 and returns the tfjs padding mode to use after it. */
  private pad(x: Sym, name: string, kernel: number, stride: number): [Sym, 'same' | 'valid'] {
    if (kernel === 1) return [x, 'valid'];
    if (stride === 1) return [x, 'same'];
    const p = kernel >> 1;
    const padded = tfl.layers.zeroPadding2d({ name: `${name}.pad`, padding: [p, p] }).apply(x) as Sym;
    return [padded, 'valid'];
  }

  /** Conv2d (groups 1), padding k // 2: [N, H, W, Cin] -> [N, H', W', filters]. */
  conv(x: Sym, name: string, filters: number, kernel: number, stride = 1, bias = false): Sym {
    const fanIn = hwc(x)[2] * kernel * kernel;
    const [input, padding] = this.pad(x, name, kernel, stride);
    const torch = this.convInit === 'torch-default';
    const kernelInitializer = torch
      ? this.uniform(1 / Math.sqrt(fanIn))
      : this.normal(Math.sqrt(2 / (kernel * kernel * filters)));
    const biasInit = bias ? { biasInitializer: torch ? this.uniform(1 / Math.sqrt(fanIn)) : 'zeros' } : {};
    return tfl.layers
      .conv2d({
        name,
        filters,
        kernelSize: kernel,
        strides: stride,
        padding,
        useBias: bias,
        kernelInitializer,
        ...biasInit,
      })
      .apply(input) as Sym;
  }

  /** Depthwise conv (PyTorch groups = channels, no bias), padding k // 2: [N, H, W, C] -> [N, H', W', C]. */
  depthwise(x: Sym, name: string, kernel: number, stride = 1): Sym {
    const channels = hwc(x)[2];
    const [input, padding] = this.pad(x, name, kernel, stride);
    const depthwiseInitializer =
      this.convInit === 'torch-default'
        ? this.uniform(1 / kernel) // fan_in = (C / groups) * k * k = k * k
        : this.normal(Math.sqrt(2 / (kernel * kernel * channels))); // PyTorch out_channels = C
    return tfl.layers
      .depthwiseConv2d({
        name,
        kernelSize: kernel,
        strides: stride,
        padding,
        useBias: false,
        depthwiseInitializer,
      })
      .apply(input) as Sym;
  }

  /** BatchNorm2d over the channel axis. */
  bn(x: Sym, name: string): Sym {
    return fusedBatchNorm({ name, axis: -1, momentum: 0.9, epsilon: 1e-5 }).apply(x) as Sym;
  }

  /** A separate ReLU layer (so its input, the pre-activation, stays tappable). */
  relu(x: Sym, name: string): Sym {
    return tfl.layers.activation({ name, activation: 'relu' }).apply(x) as Sym;
  }

  add(xs: Sym[], name: string): Sym {
    return tfl.layers.add({ name }).apply(xs) as Sym;
  }

  concat(xs: Sym[], name: string): Sym {
    return tfl.layers.concatenate({ name, axis: -1 }).apply(xs) as Sym;
  }

  /** Global average pool: [N, H, W, C] -> [N, C]. */
  gap(x: Sym, name: string): Sym {
    return tfl.layers.globalAveragePooling2d({ name }).apply(x) as Sym;
  }

  /** Linear layer: [N, in] -> [N, units]. */
  dense(x: Sym, name: string, units: number, init: LinearInit): Sym {
    const fanIn = x.shape[1];
    if (typeof fanIn !== 'number') throw new Error(`${name}: expected a [N, features] input`);
    const bound = 1 / Math.sqrt(fanIn);
    const kernelInitializer = init === 'normal-0.01' ? this.normal(0.01) : this.uniform(bound);
    const biasInitializer = init === 'torch-default' ? this.uniform(bound) : 'zeros';
    return tfl.layers.dense({ name, units, kernelInitializer, biasInitializer }).apply(x) as Sym;
  }
}
