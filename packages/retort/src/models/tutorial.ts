/**
 * DeepNN (teacher) and LightNN (student) from the PyTorch tutorial "Knowledge Distillation Tutorial"
 * (A. Chariton, pytorch.org/tutorials/beginner/knowledge_distillation_tutorial, 2023), as tfjs-layers
 * functional models over NHWC images.
 *
 * Layer names follow the tutorial's `features` / `classifier` split so taps and weight import can
 * address them. Each conv carries its ReLU (`activation: 'relu'`, so tfjs runs one FusedConv2D
 * kernel): the output of `features.convK` is the output of the tutorial's ReLU after that conv, and
 * there is no separate pre-activation tensor. Mapping to the tutorial's `nn.Sequential` indices:
 *
 * | DeepNN here                        | tutorial        | LightNN here      | tutorial        |
 * |------------------------------------|-----------------|-------------------|-----------------|
 * | features.conv1 (3->128, +ReLU)     | features.0, .1  | features.conv1    | features.0, .1  |
 * | features.conv2 (128->64, +ReLU)    | features.2, .3  | features.pool1    | features.2      |
 * | features.pool1                     | features.4      | features.conv2    | features.3, .4  |
 * | features.conv3 (64->64, +ReLU)     | features.5, .6  | features.pool2    | features.5      |
 * | features.conv4 (64->32, +ReLU)     | features.7, .8  | flatten           | torch.flatten   |
 * | features.pool2                     | features.9      | classifier.fc1    | classifier.0, .1|
 * | flatten                            | torch.flatten   | classifier.dropout| classifier.2    |
 * | classifier.fc1 (+ReLU)             | classifier.0, .1| classifier.fc2    | classifier.3    |
 * | classifier.dropout (p = 0.1)       | classifier.2    |                   |                 |
 * | classifier.fc2 (logits)            | classifier.3    |                   |                 |
 *
 * Flatten order differs from PyTorch: here the flattened index of (h, w, c) is (h * W + w) * C + c
 * (NHWC), in PyTorch it is (c * H + h) * W + w (NCHW). Shapes, parameter counts and speed are the
 * same; importing PyTorch `classifier.0.weight` needs its input columns permuted accordingly (and
 * conv weights OIHW -> HWIO, linear weights transposed).
 *
 * Initialisation is PyTorch's default for Conv2d and Linear (kaiming_uniform with a = sqrt(5), which
 * reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and for biases, fan_in = in_channels *
 * kh * kw or in_features), so training from scratch behaves like the tutorial.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { randomUniformInit } from './common.js';

/** Options shared by both tutorial models. */
export interface TutorialNetOptions {
  /** Input image shape [H, W, C] (NHWC without the batch axis). Default [32, 32, 3] (CIFAR-10). */
  inputShape?: readonly [number, number, number];
  /** Number of classes (logits). Default 10. */
  numClasses?: number;
  /** Base seed for the initialisers; layer i uses seed + 2i (kernel) and seed + 2i + 1 (bias). */
  seed?: number;
  /** Model name. Defaults to 'DeepNN' / 'LightNN'. */
  name?: string;
}

type Init = ReturnType<typeof randomUniformInit>;

/** PyTorch's default Conv2d/Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias. */
function torchDefaultInit(fanIn: number, seed: number | undefined): { kernel: Init; bias: Init } {
  const bound = 1 / Math.sqrt(fanIn);
  const uniform = (s: number | undefined): Init =>
    randomUniformInit(
      s === undefined ? { minval: -bound, maxval: bound } : { minval: -bound, maxval: bound, seed: s },
    );
  return { kernel: uniform(seed), bias: uniform(seed === undefined ? undefined : seed + 1) };
}

class Builder {
  private layer = 0;
  constructor(private readonly seed: number | undefined) {}

  private init(fanIn: number): { kernel: Init; bias: Init } {
    const s = this.seed === undefined ? undefined : this.seed + 2 * this.layer;
    this.layer++;
    return torchDefaultInit(fanIn, s);
  }

  /** 3x3 conv, stride 1, padding 1 ('same'), fused ReLU. */
  conv3x3Relu(x: tfl.SymbolicTensor, inChannels: number, filters: number, name: string): tfl.SymbolicTensor {
    const { kernel, bias } = this.init(inChannels * 9);
    return tfl.layers
      .conv2d({
        name,
        filters,
        kernelSize: 3,
        strides: 1,
        padding: 'same',
        activation: 'relu',
        kernelInitializer: kernel,
        biasInitializer: bias,
      })
      .apply(x) as tfl.SymbolicTensor;
  }

  dense(
    x: tfl.SymbolicTensor,
    inFeatures: number,
    units: number,
    name: string,
    relu: boolean,
  ): tfl.SymbolicTensor {
    const { kernel, bias } = this.init(inFeatures);
    return tfl.layers
      .dense({
        name,
        units,
        activation: relu ? 'relu' : 'linear',
        kernelInitializer: kernel,
        biasInitializer: bias,
      })
      .apply(x) as tfl.SymbolicTensor;
  }
}

function maxPool2(x: tfl.SymbolicTensor, name: string): tfl.SymbolicTensor {
  return tfl.layers
    .maxPooling2d({ name, poolSize: 2, strides: 2, padding: 'valid' })
    .apply(x) as tfl.SymbolicTensor;
}

function checkedShape(opts: TutorialNetOptions, model: string): [number, number, number] {
  const [h, w, c] = opts.inputShape ?? [32, 32, 3];
  for (const [k, v] of [
    ['H', h],
    ['W', w],
    ['C', c],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new Error(`${model}: inputShape ${k} must be a positive integer, got ${String(v)}`);
    }
  }
  if (h < 4 || w < 4)
    throw new Error(`${model}: inputShape H and W must be >= 4 (two 2x2 pools), got ${h}x${w}`);
  return [h, w, c];
}

function checkedClasses(opts: TutorialNetOptions, model: string): number {
  const n = opts.numClasses ?? 10;
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${model}: numClasses must be a positive integer, got ${n}`);
  return n;
}

/**
 * The tutorial's teacher. Input [N, H, W, C] (default 32x32x3), output logits [N, numClasses].
 * conv3x3(C->128)-relu-conv3x3(128->64)-relu-maxpool2-conv3x3(64->64)-relu-conv3x3(64->32)-relu-
 * maxpool2-flatten-linear(32*(H/4)*(W/4)->512)-relu-dropout(0.1)-linear(512->numClasses).
 * 1,186,986 parameters at the defaults (as PyTorch).
 */
export function deepNN(opts: TutorialNetOptions = {}): tfl.LayersModel {
  const [h, w, c] = checkedShape(opts, 'deepNN');
  const numClasses = checkedClasses(opts, 'deepNN');
  const b = new Builder(opts.seed);
  const input = tfl.input({ shape: [h, w, c], name: 'input' });
  let x = b.conv3x3Relu(input, c, 128, 'features.conv1');
  x = b.conv3x3Relu(x, 128, 64, 'features.conv2');
  x = maxPool2(x, 'features.pool1');
  x = b.conv3x3Relu(x, 64, 64, 'features.conv3');
  x = b.conv3x3Relu(x, 64, 32, 'features.conv4');
  x = maxPool2(x, 'features.pool2');
  x = tfl.layers.flatten({ name: 'flatten' }).apply(x) as tfl.SymbolicTensor;
  const flat = 32 * Math.floor(h / 4) * Math.floor(w / 4);
  x = b.dense(x, flat, 512, 'classifier.fc1', true);
  x = tfl.layers.dropout({ name: 'classifier.dropout', rate: 0.1 }).apply(x) as tfl.SymbolicTensor;
  const logits = b.dense(x, 512, numClasses, 'classifier.fc2', false);
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? 'DeepNN' });
}

/**
 * The tutorial's student. Input [N, H, W, C] (default 32x32x3), output logits [N, numClasses].
 * conv3x3(C->16)-relu-maxpool2-conv3x3(16->16)-relu-maxpool2-flatten-linear(16*(H/4)*(W/4)->256)-
 * relu-dropout(0.1)-linear(256->numClasses). 267,738 parameters at the defaults (as PyTorch).
 */
export function lightNN(opts: TutorialNetOptions = {}): tfl.LayersModel {
  const [h, w, c] = checkedShape(opts, 'lightNN');
  const numClasses = checkedClasses(opts, 'lightNN');
  const b = new Builder(opts.seed);
  const input = tfl.input({ shape: [h, w, c], name: 'input' });
  let x = b.conv3x3Relu(input, c, 16, 'features.conv1');
  x = maxPool2(x, 'features.pool1');
  x = b.conv3x3Relu(x, 16, 16, 'features.conv2');
  x = maxPool2(x, 'features.pool2');
  x = tfl.layers.flatten({ name: 'flatten' }).apply(x) as tfl.SymbolicTensor;
  const flat = 16 * Math.floor(h / 4) * Math.floor(w / 4);
  x = b.dense(x, flat, 256, 'classifier.fc1', true);
  x = tfl.layers.dropout({ name: 'classifier.dropout', rate: 0.1 }).apply(x) as tfl.SymbolicTensor;
  const logits = b.dense(x, 256, numClasses, 'classifier.fc2', false);
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? 'LightNN' });
}
