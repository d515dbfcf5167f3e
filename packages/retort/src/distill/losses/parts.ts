/**
 * Trainable parts of the distillation methods (connectors, regressors, embeddings, variances) as
 * plain named weights: a one-layer tfjs-layers model whose layer only owns variables. The trainer
 * updates and checkpoints it like any part (TrainTask.parts); the methods' pure loss functions take
 * the weights as tensors, so golden tests can feed fixture weights directly.
 */
import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Layer } from '@tensorflow/tfjs-layers/dist/engine/topology.js';

type Initializer = ReturnType<typeof tfl.initializers.zeros>;

export interface WeightSpec {
  name: string;
  shape: number[];
  init: Initializer;
  /** Default true; false for state such as a memory bank (checkpointed, not trained). */
  trainable?: boolean;
}

// tfjs-layers does not export its Layer base class; every layer instance carries it.
const LayerBase = Object.getPrototypeOf(
  Object.getPrototypeOf(tfl.layers.dense({ units: 1 })).constructor,
) as typeof Layer;

class WeightHolder extends LayerBase {
  static className = 'RetortWeights';
  constructor(
    name: string,
    private readonly specs: readonly WeightSpec[],
  ) {
    super({ name, trainable: true });
  }
  override build(): void {
    for (const s of this.specs)
      this.addWeight(s.name, s.shape, 'float32', s.init, undefined, s.trainable ?? true);
    this.built = true;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    return inputs;
  }
}

/** A part holding the given weights, built at once. */
export function weightPart(name: string, specs: readonly WeightSpec[]): tfl.LayersModel {
  if (new Set(specs.map((s) => s.name)).size !== specs.length)
    throw new Error(`part ${name}: weight names must be unique, got ${specs.map((s) => s.name).join(', ')}`);
  const holder = new WeightHolder(name, specs);
  return tfl.sequential({ name, layers: [tfl.layers.inputLayer({ inputShape: [1] }), holder] });
}

/** The live variables of a part made by weightPart, by spec name. */
export function partWeights(model: tfl.LayersModel): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const layer of model.layers) {
    for (const w of layer.weights) {
      const short = w.originalName.split('/').pop() ?? w.originalName;
      out[short] = w.read() as tf.Variable;
    }
  }
  return out;
}

/** One weight of a part, with a clear error when it is missing. */
export function partWeight(model: tfl.LayersModel, name: string): tf.Variable {
  const w = partWeights(model)[name];
  if (w === undefined)
    throw new Error(
      `part ${model.name}: no weight '${name}' (has ${Object.keys(partWeights(model)).join(', ')})`,
    );
  return w;
}

/** PyTorch's Conv2d/Linear default: kernel and bias uniform in +-1/sqrt(fan_in). */
export function torchUniform(fanIn: number): Initializer {
  const b = 1 / Math.sqrt(fanIn);
  return tfl.initializers.randomUniform({ minval: -b, maxval: b });
}
