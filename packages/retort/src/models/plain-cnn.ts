/**
 * A plain CNN: stages of conv3x3 -> BN -> ReLU layers with a 2x2 max pool between stages, then a
 * global average pool and one Linear. The VGG pattern ("Very Deep Convolutional Networks for
 * Large-Scale Image Recognition", Simonyan & Zisserman, ICLR 2015) with batch norm and the global
 * pooling head of "Network In Network" (Lin, Chen & Yan, ICLR 2014) in place of VGG's dense layers,
 * so any input size works and the classifier stays small. Without shortcuts every layer's width is
 * free, which makes it the simplest family for a student architecture search over widths and depths.
 *
 * Layer names (s = 1.. stages, l = 0.. layers of the stage):
 *   stage{s}.{l}.conv, stage{s}.{l}.bn, stage{s}.{l}.relu   3x3 conv (stride 1, 'same', no bias)
 *   pool{s}                                                 2x2 max pool after every stage but the last
 *   avgpool ([N, C]), fc (logits [N, numClasses])
 * Stage taps (`plainCnnTaps`): the last ReLU of each stage (preact: its BN), then avgpool. There is
 * no stem apart from the first stage, so, as for the tutorial nets, the list has no f0 of its own.
 *
 * Initialisation as the zoo's VGG and ResNet (RepDistiller): convs N(0, 2 / (9 * out_channels)),
 * BN gamma 1 / beta 0, fc PyTorch's Linear default.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { type ModelTaps, Net, resolveOptions, type Sym, type ZooOptions } from './common.js';

export interface PlainCnnOptions extends ZooOptions {
  /** Output channels of each conv, per stage. Default [[16, 16], [32, 32], [64, 64]]. */
  stages?: readonly (readonly number[])[];
}

const DEFAULT_STAGES = [
  [16, 16],
  [32, 32],
  [64, 64],
] as const;

function checkedStages(stages: readonly (readonly number[])[]): readonly (readonly number[])[] {
  const ok =
    stages.length >= 1 &&
    stages.every((st) => st.length >= 1 && st.every((c) => Number.isInteger(c) && c >= 1));
  if (!ok)
    throw new Error(
      `plainCnn: stages must be one or more lists of positive channel counts, got ${JSON.stringify(stages)}`,
    );
  return stages;
}

/**
 * Plain CNN. Input [N, H, W, C] (default 32x32x3) with H, W >= 2^(stages - 1) so every pool has a
 * pixel to keep, output logits [N, numClasses] (default 100).
 */
export function plainCnn(opts: PlainCnnOptions = {}): tfl.LayersModel {
  const stages = checkedStages(opts.stages ?? DEFAULT_STAGES);
  const { shape, numClasses } = resolveOptions(opts, 'plainCnn', 2 ** (stages.length - 1));
  const net = new Net(opts.seed, 'kaiming-fan-out');
  const input = tfl.input({ shape, name: 'input' });
  let x: Sym = input;
  for (const [i, channels] of stages.entries()) {
    const s = i + 1;
    for (const [l, c] of channels.entries()) {
      const p = `stage${s}.${l}`;
      x = net.relu(net.bn(net.conv(x, `${p}.conv`, c, 3), `${p}.bn`), `${p}.relu`);
    }
    if (s < stages.length)
      x = tfl.layers.maxPooling2d({ name: `pool${s}`, poolSize: 2, strides: 2 }).apply(x) as Sym;
  }
  const logits = net.dense(net.gap(x, 'avgpool'), 'fc', numClasses, 'torch-default');
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? 'plaincnn' });
}

/** Feature taps of `plainCnn` with these stages (default: the builder's default). */
export function plainCnnTaps(stages: readonly (readonly number[])[] = DEFAULT_STAGES): ModelTaps {
  const last = checkedStages(stages).map((st, i) => `stage${i + 1}.${st.length - 1}`);
  return {
    stages: [
      ...last.map((p) => ({ output: `${p}.relu`, preact: `${p}.bn` })),
      { output: 'avgpool', preact: 'avgpool' },
    ],
    bnBeforeRelu: last.map((p) => `${p}.bn`),
  };
}
