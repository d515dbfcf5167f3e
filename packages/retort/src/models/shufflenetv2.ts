/**
 * ShuffleNetV2: "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", Ma,
 * Zhang, Zheng & Sun, ECCV 2018, in the CIFAR form RepDistiller uses (models/ShuffleNetv2.py; its
 * 'ShuffleV2' is net size 1 with stage channels (116, 232, 464) and 1024 head channels).
 *
 * Structure: conv1x1 (3 -> 24) -> BN -> ReLU (no stem stride or pool), three stages of one
 * down-sampling block and 3 / 7 / 3 basic blocks, conv1x1 -> BN -> ReLU, global average pool
 * (RepDistiller's avg_pool2d(4), the same at 32x32), Linear. No conv has a bias.
 * - Down block (stride 2, in -> out, mid = out / 2): left = ReLU(BN(conv1x1(BN(dw3x3/2(x))))),
 *   right = ReLU(BN(conv1x1(BN(dw3x3/2(ReLU(BN(conv1x1(x)))))))), shuffle(concat(left, right)).
 * - Basic block: split channels in halves x1 | x2; y = BN(conv1x1(BN(dw3x3(ReLU(BN(conv1x1(x2)))))));
 *   shuffle(concat(x1, ReLU(y))). Here the ReLU runs over concat(x1, y): x1 is always a ReLU output
 *   (every block ends in ReLUs and shuffles), so the values and gradients are the same, and the
 *   concat before it is RepDistiller's pre-activation feature.
 * - Channel shuffle with 2 groups, in NHWC: [H, W, C] -> reshape [H, W, 2, C/2] -> swap the last
 *   two axes -> reshape [H, W, C]; output channel 2i + g is input channel g * C/2 + i, as PyTorch's
 *   view(N, 2, C/2, H, W).transpose(1, 2) on NCHW.
 *
 * Layer names (parameterised layers carry the PyTorch state_dict prefix); blocks are
 * `layer{s}.{b}`, b = 0 the down block:
 *   conv1, bn1, relu1                                  stem (f0 = relu1)
 *   layer{s}.0.conv1.pad, .conv1 ... .conv5, .bn1 ... .bn5, .relu2, .relu3, .relu5, .cat
 *   layer{s}.{b}.split.x1, .split.x2                  channel halves (b >= 1)
 *   layer{s}.{b}.conv1, .bn1, .relu1, .conv2, .bn2, .conv3, .bn3, .cat, .relu3
 *   layer{s}.{b}.shuffle.view, .shuffle.permute, .shuffle   channel shuffle; `.shuffle` = output
 *   conv2, bn2, relu2, avgpool ([N, C]), linear (logits)
 * Stage taps (`shuffleNetV2Taps`): f0 = relu1, f{s} = layer{s}.{last}.shuffle (preact:
 * layer{s}.{last}.cat, unshuffled as in RepDistiller), f4 = avgpool. No bnBeforeRelu (the reference
 * raises NotImplementedError).
 *
 * Initialisation as RepDistiller, which leaves PyTorch's defaults: convs U(+-1/sqrt(fan_in)) with
 * fan_in = in/groups * k * k (9 for depthwise), BN gamma 1 / beta 0, linear U(+-1/sqrt(in)) weight
 * and bias.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { hwc, type ModelTaps, Net, resolveOptions, type Sym, type ZooOptions } from './common.js';

/** Stage channels (3) + head channels, and basic blocks per stage, by net size. */
export const SHUFFLENETV2_CONFIGS: Readonly<Record<string, { channels: number[]; blocks: number[] }>> = {
  '0.2': { channels: [40, 80, 160, 512], blocks: [3, 3, 3] },
  '0.3': { channels: [40, 80, 160, 512], blocks: [3, 7, 3] },
  '0.5': { channels: [48, 96, 192, 1024], blocks: [3, 7, 3] },
  '1': { channels: [116, 232, 464, 1024], blocks: [3, 7, 3] },
  '1.5': { channels: [176, 352, 704, 1024], blocks: [3, 7, 3] },
  '2': { channels: [224, 488, 976, 2048], blocks: [3, 7, 3] },
};

export interface ShuffleNetV2Options extends ZooOptions {
  /** Net size: 0.2, 0.3, 0.5, 1, 1.5 or 2; default 1 (RepDistiller's ShuffleV2). */
  netSize?: number;
}

/** Channels [start, start + size) of an NHWC tensor: [N, H, W, C] -> [N, H, W, size]. */
export class ChannelSlice extends tfl.layers.Layer {
  static readonly className = 'RetortChannelSlice';
  readonly start: number;
  readonly size: number;

  constructor(args: { start: number; size: number; name?: string }) {
    super(args.name === undefined ? {} : { name: args.name });
    this.start = args.start;
    this.size = args.size;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...s.slice(0, -1), this.size];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.slice(x, [0, 0, 0, this.start], [-1, -1, -1, this.size]);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), start: this.start, size: this.size };
  }
}
tf.serialization.registerClass(ChannelSlice);

/** The net sizes with a configuration, ascending. */
export function shuffleNetV2Sizes(): number[] {
  return Object.keys(SHUFFLENETV2_CONFIGS)
    .map(Number)
    .sort((a, b) => a - b);
}

function config(netSize: number): { channels: number[]; blocks: number[] } {
  const cfg = SHUFFLENETV2_CONFIGS[String(netSize)];
  if (cfg === undefined)
    throw new Error(`shuffleNetV2: netSize must be one of ${shuffleNetV2Sizes().join(', ')}, got ${netSize}`);
  return cfg;
}

/** Channel shuffle with 2 groups: [N, H, W, C] -> [N, H, W, C]. */
function shuffle(x: Sym, p: string): Sym {
  const [h, w, c] = hwc(x);
  let y = tfl.layers.reshape({ name: `${p}.shuffle.view`, targetShape: [h, w, 2, c / 2] }).apply(x) as Sym;
  y = tfl.layers.permute({ name: `${p}.shuffle.permute`, dims: [1, 2, 4, 3] }).apply(y) as Sym;
  return tfl.layers.reshape({ name: `${p}.shuffle`, targetShape: [h, w, c] }).apply(y) as Sym;
}

/** Down-sampling block `p`: [N, H, W, Cin] -> [N, H/2, W/2, cout]. */
function downBlock(net: Net, x: Sym, p: string, cout: number): Sym {
  const mid = cout / 2;
  let left = net.bn(net.depthwise(x, `${p}.conv1`, 3, 2), `${p}.bn1`);
  left = net.relu(net.bn(net.conv(left, `${p}.conv2`, mid, 1), `${p}.bn2`), `${p}.relu2`);
  let right = net.relu(net.bn(net.conv(x, `${p}.conv3`, mid, 1), `${p}.bn3`), `${p}.relu3`);
  right = net.bn(net.depthwise(right, `${p}.conv4`, 3, 2), `${p}.bn4`);
  right = net.relu(net.bn(net.conv(right, `${p}.conv5`, mid, 1), `${p}.bn5`), `${p}.relu5`);
  return shuffle(net.concat([left, right], `${p}.cat`), p);
}

/** Basic block `p`: [N, H, W, C] -> [N, H, W, C]. */
function basicBlock(net: Net, x: Sym, p: string): Sym {
  const half = hwc(x)[2] / 2;
  const x1 = new ChannelSlice({ name: `${p}.split.x1`, start: 0, size: half }).apply(x) as Sym;
  const x2 = new ChannelSlice({ name: `${p}.split.x2`, start: half, size: half }).apply(x) as Sym;
  let y = net.relu(net.bn(net.conv(x2, `${p}.conv1`, half, 1), `${p}.bn1`), `${p}.relu1`);
  y = net.bn(net.depthwise(y, `${p}.conv2`, 3), `${p}.bn2`);
  y = net.bn(net.conv(y, `${p}.conv3`, half, 1), `${p}.bn3`);
  return shuffle(net.relu(net.concat([x1, y], `${p}.cat`), `${p}.relu3`), p);
}

/**
 * ShuffleNetV2 (default: RepDistiller's ShuffleV2, net size 1). Input [N, H, W, C] (default
 * 32x32x3), output logits [N, numClasses] (default 100). Any H, W >= 1 work.
 */
export function shuffleNetV2(opts: ShuffleNetV2Options = {}): tfl.LayersModel {
  const { channels, blocks } = config(opts.netSize ?? 1);
  const { shape, numClasses } = resolveOptions(opts, 'shuffleNetV2', 1);
  const net = new Net(opts.seed, 'torch-default');
  const input = tfl.input({ shape, name: 'input' });
  let x = net.relu(net.bn(net.conv(input, 'conv1', 24, 1), 'bn1'), 'relu1');
  for (let s = 1; s <= 3; s++) {
    x = downBlock(net, x, `layer${s}.0`, channels[s - 1]!);
    for (let b = 1; b <= blocks[s - 1]!; b++) x = basicBlock(net, x, `layer${s}.${b}`);
  }
  x = net.relu(net.bn(net.conv(x, 'conv2', channels[3]!, 1), 'bn2'), 'relu2');
  const logits = net.dense(net.gap(x, 'avgpool'), 'linear', numClasses, 'torch-default');
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? 'shufflenetv2' });
}

/** Feature taps of `shuffleNetV2({ netSize })`. */
export function shuffleNetV2Taps(netSize = 1): ModelTaps {
  const { blocks } = config(netSize);
  const stage = (s: number) => {
    const p = `layer${s}.${blocks[s - 1]!}`;
    return { output: `${p}.shuffle`, preact: `${p}.cat` };
  };
  return {
    stages: [
      { output: 'relu1', preact: 'relu1' },
      stage(1),
      stage(2),
      stage(3),
      { output: 'avgpool', preact: 'avgpool' },
    ],
    bnBeforeRelu: [],
  };
}
