/**
 * VGG with batch norm for CIFAR: "Very Deep Convolutional Networks for Large-Scale Image
 * Recognition", Simonyan & Zisserman, ICLR 2015, as defined by RepDistiller (models/vgg.py, the
 * `_bn` variants its model_dict uses): five blocks of conv3x3 (with bias) -> BN -> ReLU, the last
 * ReLU of each block applied outside it, 2x2 max pools after blocks 0-2 (and after block 3 only
 * for 64-pixel inputs, as the reference), global average pool, one Linear (512 -> classes).
 *
 * Configurations (channels per block): vgg8 [64][128][256][512][512]; vgg11 [64][128][256x2]
 * [512x2][512x2]; vgg13 [64x2][128x2][256x2][512x2][512x2]; vgg16 and vgg19 with 3 and 4 convs
 * in blocks 2-4.
 *
 * Layer names (PyTorch nn.Sequential indices inside a block; parameterised layers carry the
 * state_dict prefix):
 *   block{i}.{3j}      conv j of block i (j = 0, 1, ...; 3x3, stride 1, 'same')
 *   block{i}.{3j+1}    its BN
 *   block{i}.{3j+2}    its ReLU, except after the block's last conv
 *   relu{i}            the ReLU after block i (RepDistiller's F.relu in forward)
 *   pool0 .. pool3     2x2 max pools (pool3 only when H = 64); pool4 the global average pool [N, 512]
 *   classifier         logits [N, numClasses]
 * Stage taps (`vggTaps`): f0 = relu0, f{i} = relu{i} (preact: block{i}'s last BN) for i = 1..4,
 * f5 = pool4. RepDistiller returns the post-ReLU f0 in both modes; so does the tap.
 *
 * Initialisation as RepDistiller: convs N(0, 2 / (9 * out_channels)) with zero bias, BN gamma 1 /
 * beta 0, classifier N(0, 0.01) with zero bias.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { type ModelTaps, Net, resolveOptions, type Sym, type ZooOptions } from './common.js';

/** Channels of each conv, per block, by depth. */
export const VGG_CONFIGS: Readonly<Record<number, readonly (readonly number[])[]>> = {
  8: [[64], [128], [256], [512], [512]],
  11: [[64], [128], [256, 256], [512, 512], [512, 512]],
  13: [
    [64, 64],
    [128, 128],
    [256, 256],
    [512, 512],
    [512, 512],
  ],
  16: [
    [64, 64],
    [128, 128],
    [256, 256, 256],
    [512, 512, 512],
    [512, 512, 512],
  ],
  19: [
    [64, 64],
    [128, 128],
    [256, 256, 256, 256],
    [512, 512, 512, 512],
    [512, 512, 512, 512],
  ],
};

function config(depth: number): readonly (readonly number[])[] {
  const cfg = VGG_CONFIGS[depth];
  if (cfg === undefined)
    throw new Error(`vgg: depth must be one of ${Object.keys(VGG_CONFIGS).join(', ')}, got ${depth}`);
  return cfg;
}

function maxPool(x: Sym, name: string): Sym {
  return tfl.layers.maxPooling2d({ name, poolSize: 2, strides: 2, padding: 'valid' }).apply(x) as Sym;
}

/**
 * VGG-depth with BN. Input [N, H, W, C] (default 32x32x3), output logits [N, numClasses] (default
 * 100). H and W must be >= 8 (three 2x2 pools).
 */
export function vgg(depth: number, opts: ZooOptions = {}): tfl.LayersModel {
  const cfg = config(depth);
  const { shape, numClasses } = resolveOptions(opts, `vgg${depth}`, 8);
  const net = new Net(opts.seed, 'kaiming-fan-out');
  const input = tfl.input({ shape, name: 'input' });
  let x: Sym = input;
  for (const [i, widths] of cfg.entries()) {
    for (const [j, w] of widths.entries()) {
      x = net.bn(net.conv(x, `block${i}.${3 * j}`, w, 3, 1, true), `block${i}.${3 * j + 1}`);
      if (j < widths.length - 1) x = net.relu(x, `block${i}.${3 * j + 2}`);
    }
    x = net.relu(x, `relu${i}`);
    if (i < 3 || (i === 3 && shape[0] === 64)) x = maxPool(x, `pool${i}`);
  }
  const logits = net.dense(net.gap(x, 'pool4'), 'classifier', numClasses, 'normal-0.01');
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? `vgg${depth}` });
}

/** Feature taps of `vgg(depth)`. */
export function vggTaps(depth: number): ModelTaps {
  const cfg = config(depth);
  const lastBn = (i: number) => `block${i}.${3 * (cfg[i]!.length - 1) + 1}`;
  const stages = [1, 2, 3, 4].map((i) => ({ output: `relu${i}`, preact: lastBn(i) }));
  return {
    stages: [{ output: 'relu0', preact: 'relu0' }, ...stages, { output: 'pool4', preact: 'pool4' }],
    bnBeforeRelu: [1, 2, 3, 4].map(lastBn),
  };
}
