/**
 * A small multi-layer perceptron over flattened images: the kind of student in Hinton et al.'s
 * MNIST distillation experiments ("Distilling the Knowledge in a Neural Network", 2015, section 3),
 * where a net far below the teacher's capacity gains most from soft targets.
 * Layers: flatten -> fc1 (hidden units, ReLU) [-> fc2 ...] -> classifier. PyTorch's default Linear
 * init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { randomUniformInit, type ZooOptions } from './common.js';

export interface MlpOptions extends ZooOptions {
  /** Hidden layer widths, e.g. [64] (default) or [256, 128]. */
  hidden?: readonly number[];
}

export function mlp(opts: MlpOptions = {}): tfl.LayersModel {
  const inputShape = opts.inputShape ?? [32, 32, 3];
  const numClasses = opts.numClasses ?? 100;
  const hidden = opts.hidden ?? [64];
  const seed = opts.seed;
  const input = tfl.input({ shape: [...inputShape] });
  let h = tfl.layers.flatten({ name: 'flatten' }).apply(input) as tfl.SymbolicTensor;
  let fanIn = inputShape.reduce((a, b) => a * b, 1);
  let i = 0;
  const init = (fan: number, s: number | undefined) =>
    randomUniformInit({
      minval: -1 / Math.sqrt(fan),
      maxval: 1 / Math.sqrt(fan),
      ...(s === undefined ? {} : { seed: s }),
    });
  for (const units of [...hidden, numClasses]) {
    const last = i === hidden.length;
    const s = seed === undefined ? undefined : seed + 2 * i;
    h = tfl.layers
      .dense({
        units,
        activation: last ? 'linear' : 'relu',
        name: last ? 'classifier' : `fc${i + 1}`,
        kernelInitializer: init(fanIn, s),
        biasInitializer: init(fanIn, s === undefined ? undefined : s + 1),
      })
      .apply(h) as tfl.SymbolicTensor;
    fanIn = units;
    i++;
  }
  return tfl.model({ inputs: input, outputs: h, name: opts.name ?? 'MLP' });
}
