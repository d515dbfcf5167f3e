/**
 * CIFAR-style ResNets: "Deep Residual Learning for Image Recognition", He, Zhang, Ren & Sun,
 * CVPR 2016 (section 4.2), as defined by RepDistiller (models/resnet.py): resnet8 ... resnet110
 * with stage widths [16, 16, 32, 64], resnet8x4 / resnet32x4 with [32, 64, 128, 256].
 *
 * Structure: conv3x3 -> BN -> ReLU, then three stages of basic blocks (conv3x3 -> BN -> ReLU ->
 * conv3x3 -> BN, + shortcut, ReLU), n = (depth - 2) / 6 in each (the `blocks` option sets a count
 * per stage, for architecture search); the first block of stages 2 and 3 has stride 2. The
 * shortcut is the identity, or a 1x1 conv (stride s, no bias) -> BN where the stride or the width
 * changes (also in stage 1 of the x4 models: 32 -> 64). No conv has a bias.
 * Head: global average pool (RepDistiller's AvgPool2d(8), the same at 32x32) -> Linear.
 *
 * Layer names (parameterised layers carry the PyTorch state_dict prefix: `layer1.0.conv1` holds
 * `layer1.0.conv1.weight`); blocks are `layer{s}.{b}`, s = 1..3, b = 0..n-1:
 *   conv1, bn1, relu                          stem (output = RepDistiller's f0)
 *   layer{s}.{b}.conv1.pad                    zero padding of a stride-2 conv1 (see common.ts)
 *   layer{s}.{b}.conv1, .bn1, .relu, .conv2, .bn2
 *   layer{s}.{b}.downsample.0, .downsample.1  shortcut conv and BN, where present
 *   layer{s}.{b}.add                          residual sum: the block's pre-activation output
 *   layer{s}.{b}.relu_out                     the block's output
 *   avgpool ([N, C]), fc (logits [N, numClasses])
 * Stage taps (`resnetTaps`): f0 = relu, f{s} = layer{s}.{n-1}.relu_out (preact: .add), f4 = avgpool.
 *
 * Initialisation as RepDistiller: convs N(0, 2 / (9 * out_channels)) (kaiming_normal_, fan_out,
 * ReLU gain), BN gamma 1 / beta 0, fc PyTorch's Linear default (U(+-1/sqrt(in)) weight and bias).
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { type ModelTaps, Net, resolveOptions, type Sym, type ZooOptions } from './common.js';

type Blocks = readonly [number, number, number];

export interface ResNetOptions extends ZooOptions {
  /** Channels of [stem, stage 1, stage 2, stage 3]. Default [16, 16, 32, 64]. */
  widths?: readonly [number, number, number, number];
  /**
   * Basic blocks of stages 1-3, for block counts that differ per stage (architecture search);
   * default (depth - 2) / 6 each. Given, it must add up to the depth: 2 * (b1 + b2 + b3) + 2.
   */
  blocks?: Blocks;
}

function blocksPerStage(depth: number): number {
  if (!Number.isInteger(depth) || depth < 8 || (depth - 2) % 6 !== 0)
    throw new Error(`resnet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got ${depth}`);
  return (depth - 2) / 6;
}

/** Blocks per stage: `blocks` when given (checked against `depth`), else (depth - 2) / 6 each. */
function stageBlocks(depth: number, blocks: Blocks | undefined): Blocks {
  if (blocks === undefined) {
    const n = blocksPerStage(depth);
    return [n, n, n];
  }
  if (blocks.length !== 3 || blocks.some((b) => !Number.isInteger(b) || b < 1))
    throw new Error(`resnet${depth}: blocks must be 3 positive integers, got [${blocks.join(', ')}]`);
  const made = resnetDepth(blocks);
  // The depth names the model (resnet20); a block list that disagrees with it is a caller's mistake.
  if (made !== depth)
    throw new Error(`resnet${depth}: blocks [${blocks.join(', ')}] make depth ${made}, not ${depth}`);
  return blocks;
}

/** Depth of a CIFAR ResNet with these blocks per stage: two convs a block, the stem and the fc. */
export function resnetDepth(blocks: Blocks): number {
  return 2 * (blocks[0] + blocks[1] + blocks[2]) + 2;
}

/** Basic block `p`: [N, H, W, Cin] -> [N, H/stride, W/stride, planes]. */
function basicBlock(net: Net, x: Sym, p: string, planes: number, stride: number, cin: number): Sym {
  let y = net.conv(x, `${p}.conv1`, planes, 3, stride);
  y = net.relu(net.bn(y, `${p}.bn1`), `${p}.relu`);
  y = net.bn(net.conv(y, `${p}.conv2`, planes, 3), `${p}.bn2`);
  let shortcut = x;
  if (stride !== 1 || cin !== planes) {
    shortcut = net.bn(net.conv(x, `${p}.downsample.0`, planes, 1, stride), `${p}.downsample.1`);
  }
  return net.relu(net.add([y, shortcut], `${p}.add`), `${p}.relu_out`);
}

/**
 * CIFAR ResNet of the given depth (6n + 2). Input [N, H, W, C] (default 32x32x3), output logits
 * [N, numClasses] (default 100). Any H, W >= 1 work; the head pools globally.
 */
export function resnet(depth: number, opts: ResNetOptions = {}): tfl.LayersModel {
  const blocks = stageBlocks(depth, opts.blocks);
  const { shape, numClasses } = resolveOptions(opts, `resnet${depth}`, 1);
  const widths = opts.widths ?? [16, 16, 32, 64];
  if (widths.length !== 4 || widths.some((w) => !Number.isInteger(w) || w < 1))
    throw new Error(`resnet${depth}: widths must be 4 positive integers, got [${widths.join(', ')}]`);
  const net = new Net(opts.seed, 'kaiming-fan-out');
  const input = tfl.input({ shape, name: 'input' });
  let x = net.relu(net.bn(net.conv(input, 'conv1', widths[0], 3), 'bn1'), 'relu');
  let cin = widths[0];
  for (let s = 1; s <= 3; s++) {
    const planes = widths[s]!;
    for (let b = 0; b < blocks[s - 1]!; b++) {
      x = basicBlock(net, x, `layer${s}.${b}`, planes, s > 1 && b === 0 ? 2 : 1, cin);
      cin = planes;
    }
  }
  const logits = net.dense(net.gap(x, 'avgpool'), 'fc', numClasses, 'torch-default');
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? `resnet${depth}` });
}

/** resnet8 with widths [32, 64, 128, 256] (RepDistiller's resnet8x4). */
export function resnet8x4(opts: ZooOptions = {}): tfl.LayersModel {
  return resnet(8, { name: 'resnet8x4', ...opts, widths: [32, 64, 128, 256] });
}

/** resnet32 with widths [32, 64, 128, 256] (RepDistiller's resnet32x4). */
export function resnet32x4(opts: ZooOptions = {}): tfl.LayersModel {
  return resnet(32, { name: 'resnet32x4', ...opts, widths: [32, 64, 128, 256] });
}

/** Feature taps of `resnet(depth)` (any widths), or of `resnet(depth, { blocks })`. */
export function resnetTaps(depth: number, blocks?: Blocks): ModelTaps {
  const n = stageBlocks(depth, blocks);
  const last = (s: number) => n[s - 1]! - 1;
  const stage = (s: number) => ({
    output: `layer${s}.${last(s)}.relu_out`,
    preact: `layer${s}.${last(s)}.add`,
  });
  return {
    stages: [
      { output: 'relu', preact: 'relu' },
      stage(1),
      stage(2),
      stage(3),
      { output: 'avgpool', preact: 'avgpool' },
    ],
    bnBeforeRelu: [1, 2, 3].map((s) => `layer${s}.${last(s)}.bn2`),
  };
}
