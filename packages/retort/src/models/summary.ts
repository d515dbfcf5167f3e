/** A model's layers as rows (the per-layer table of `retort models <name>`). */
import type * as tfl from '@tensorflow/tfjs-layers';

export interface LayerRow {
  /** Layer name: what taps, `tapModel` and the ONNX exporter refer to. */
  name: string;
  /** tfjs class, e.g. Conv2D, BatchNormalization, Dense. */
  type: string;
  /** Output shape without the batch axis ([H, W, C] for maps, [C] for vectors). */
  outputShape: number[];
  /** Weights of the layer, trainable or not (batch-norm running statistics included). */
  params: number;
}

/** One row per layer, in the model's topological order. */
export function modelSummary(model: tfl.LayersModel): LayerRow[] {
  return model.layers.map((l) => {
    const shape = l.outputShape;
    const one = (Array.isArray(shape[0]) ? shape[0] : shape) as (number | null)[];
    return {
      name: l.name,
      type: l.getClassName(),
      outputShape: one.slice(1).map((d) => d ?? -1),
      params: l.countParams(),
    };
  });
}
