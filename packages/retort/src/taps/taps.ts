/**
 * Feature taps: a multi-output view of a functional tfjs-layers model that returns its logits and
 * the outputs of named layers, sharing the model's weights (no copy, no edit to model code).
 *
 * A tap is a layer name, optionally suffixed ':pre' for the layer's input instead of its output:
 * on an activation layer (e.g. a ReLU after an add) that is the pre-activation feature that methods
 * such as OFD and AB want. Layers with a fused activation have no separate pre-activation tensor;
 * ':pre' on them is refused with that reason.
 */
import type * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export interface TappedModel {
  /** The view: outputs [logits, ...taps] in the order given. */
  model: tfl.LayersModel;
  /** Per-example shape of each tap ([H, W, C] for maps, [D] for vectors). */
  shapes: number[][];
  /** Runs the view: logits and features in tap order. */
  run(x: tf.Tensor, training: boolean): { logits: tf.Tensor2D; features: tf.Tensor[] };
}

function resolveTap(model: tfl.LayersModel, tap: string): tfl.SymbolicTensor {
  const pre = tap.endsWith(':pre');
  const name = pre ? tap.slice(0, -4) : tap;
  let layer: tfl.layers.Layer;
  try {
    layer = model.getLayer(name);
  } catch {
    const names = model.layers.map((l) => l.name);
    throw new Error(`tap '${tap}': model ${model.name} has no layer '${name}' (layers: ${names.join(', ')})`);
  }
  if (!pre) return layer.output as tfl.SymbolicTensor;
  const cfg = layer.getConfig() as { activation?: string };
  if (cfg.activation !== undefined && cfg.activation !== 'linear' && layer.getClassName() !== 'Activation') {
    throw new Error(
      `tap '${tap}': layer '${name}' fuses its ${cfg.activation} activation, so no pre-activation tensor exists; ` +
        'tap a model whose activation is a separate layer',
    );
  }
  const input = layer.input;
  if (Array.isArray(input))
    throw new Error(`tap '${tap}': layer '${name}' has ${input.length} inputs; ':pre' needs one`);
  return input;
}

/** A view of `model` returning [logits, ...features at `taps`]. */
export function tapModel(model: tfl.LayersModel, taps: readonly string[]): TappedModel {
  if (model.outputs.length !== 1)
    throw new Error(`tapModel: model ${model.name} has ${model.outputs.length} outputs, expected 1 (logits)`);
  const outs = taps.map((t) => resolveTap(model, t));
  const view =
    taps.length === 0
      ? model
      : tfl.model({
          inputs: model.inputs,
          outputs: [model.outputs[0]!, ...outs],
          name: `${model.name}_taps`,
        });
  const shapes = outs.map((o) => o.shape.slice(1) as number[]);
  return {
    model: view,
    shapes,
    run(x, training) {
      const r = view.apply(x, { training }) as tf.Tensor | tf.Tensor[];
      const list = Array.isArray(r) ? r : [r];
      return { logits: list[0] as tf.Tensor2D, features: list.slice(1) };
    },
  };
}
