/**
 * Quantization-aware training of the activations ("Quantization and Training of Neural Networks
 * for Efficient Integer-Arithmetic-Only Inference", Jacob et al., CVPR 2018): during training the
 * activations the static int8 export quantizes (export/onnx/int8.ts int8QuantPoints: the outputs of
 * conv -> BN (-> ReLU) blocks, residual adds, pooled features, ...) are fake-quantized to uint8
 * with the exporter's own parameters (actQuant: asymmetric, the range widened to contain 0), with
 * the straight-through gradient inside the range and none outside (fake-quant.ts fakeQuantAffine).
 * Each range is a moving-average min/max (PyTorch's MovingAverageMinMaxObserver, constant 0.01),
 * updated on training-mode forward passes only, before quantizing that batch (PyTorch's
 * FakeQuantize order); inference-mode passes quantize with the current range and leave it.
 * After training the observed ranges are the QuantSpec of the int8 export.
 *
 * BN stays unfolded while training (as PyTorch's QAT before it freezes BN): a folded BN's point is
 * the BN's output, which is what the folded conv computes at inference.
 *
 * How it is inserted: the `call` of each quantizing layer is wrapped in place, on the instance
 * (the input's point wraps the input's consumers); removing restores the class's own `call`. No
 * layers or variables are added and the model object stays the same, so what else holds the model
 * keeps working through QAT: weight QAT (qat.ts) on the same kernels, pruning masks, feature-tap
 * views and the KD task built on it. A rebuilt model with fake-quant layers (compress/graph.ts)
 * would have new variables, which those would not see. Observer state is not checkpointed: a
 * resumed run starts its ranges from its first batch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { actQuant } from '../../export/onnx/quant.js';
import { int8QuantPoints, type QuantSpec } from '../../export/onnx.js';
import type { TrainTask } from '../../train/trainer.js';
import { fakeQuantAffine } from './fake-quant.js';
import { MovingAverageObserver } from './observers.js';

type Layer = tfl.layers.Layer;
type Call = Layer['call'];

export interface ActQatOptions {
  /** Weight of each new training batch's min and max in the moving average (default 0.01). */
  momentum?: number;
}

/** One activation's observer and uint8 fake quantization. */
export class ActFakeQuant {
  readonly observer: MovingAverageObserver;
  private lastId = -1;

  /** `quantizes` false: observe only (the float stem's input, for `QuantSpec.input`). */
  constructor(
    readonly name: string,
    momentum = 0.01,
    readonly quantizes = true,
  ) {
    this.observer = new MovingAverageObserver(momentum);
  }

  /** The observed range, or undefined before the first training batch. */
  range(): [number, number] | undefined {
    try {
      return this.observer.range();
    } catch {
      return undefined;
    }
  }

  /**
   * x [N, ...] fake-quantized with the current range (x itself before any training batch). In
   * training, the batch's min and max first update the range; a tensor seen already (the input,
   * read by several layers) is observed once.
   */
  apply(x: tf.Tensor, training: boolean): tf.Tensor {
    if (training && x.id !== this.lastId) {
      const mm = tf.tidy(() => tf.stack([tf.min(x), tf.max(x)]));
      const v = mm.dataSync();
      mm.dispose();
      try {
        this.observer.observe(v);
      } catch (e) {
        throw new Error(`act-qat: ${this.name}: ${(e as Error).message}`);
      }
      this.lastId = x.id;
    }
    const r = this.range();
    if (!this.quantizes || r === undefined) return x;
    const { scale, zp } = actQuant(r);
    return fakeQuantAffine(x, scale, zp, 'uint8');
  }
}

/** Fake quantization inserted into a model (insertActFakeQuant). */
export interface ActQat {
  /** The quantized points, as the exporter lists them. */
  readonly points: { input: boolean; layers: readonly string[] };
  /** The point of each layer, by name; `input` is the model input's. */
  readonly quants: ReadonlyMap<string, ActFakeQuant>;
  readonly input: ActFakeQuant;
  /** The observed ranges for `exportOnnx(model, { quant })`; fails naming a point never trained. */
  spec(): QuantSpec;
  /** Restores every wrapped layer's own call (the observers stay readable); again: nothing. */
  remove(): void;
}

const isTensor = (t: unknown): t is tf.Tensor => t instanceof tf.Tensor;

/**
 * Wraps, in place, the call of every layer of `model` whose output the int8 export quantizes, and
 * of the model input's consumers, so that those activations are fake-quantized (see the header).
 */
export function insertActFakeQuant(model: tfl.LayersModel, opts: ActQatOptions = {}): ActQat {
  const points = int8QuantPoints(model);
  const momentum = opts.momentum ?? 0.01;
  const inputLayer = model.inputLayers[0]!;
  const input = new ActFakeQuant(`input '${inputLayer.name}'`, momentum, points.input);
  const quants = new Map<string, ActFakeQuant>();
  for (const name of points.layers) quants.set(name, new ActFakeQuant(`layer '${name}'`, momentum));
  // What each wrapped layer does: fake-quantize its inputs at these positions, and/or its output.
  const plans = new Map<Layer, { inputs: number[]; output?: ActFakeQuant }>();
  for (const layer of model.layers) {
    const out = quants.get(layer.name);
    const node = layer.inboundNodes[0];
    const inputs = (node?.inboundLayers ?? []).flatMap((l, i) => (l === inputLayer ? [i] : []));
    if (out === undefined && inputs.length === 0) continue;
    if (layer.inboundNodes.length !== 1)
      throw new Error(
        `act-qat: layer '${layer.name}' is called ${layer.inboundNodes.length} times (shared layers are not supported)`,
      );
    if (Object.hasOwn(layer, 'call'))
      throw new Error(
        `act-qat: layer '${layer.name}' has a wrapped call already (fake quantization inserted twice?)`,
      );
    plans.set(layer, out === undefined ? { inputs } : { inputs, output: out });
  }
  const wrappers = new Map<Layer, Call>();
  for (const [layer, plan] of plans) {
    const own = layer.call.bind(layer);
    const wrapped: Call = (inputs, kwargs) =>
      tf.tidy(() => {
        const training = kwargs?.['training'] === true;
        let ins = inputs;
        if (plan.inputs.length > 0) {
          if (Array.isArray(ins)) {
            const list = ins.slice();
            for (const i of plan.inputs) list[i] = input.apply(list[i]!, training);
            ins = list;
          } else ins = input.apply(ins, training);
        }
        const y = own(ins, kwargs);
        if (plan.output === undefined) return y;
        const one = Array.isArray(y) ? (y.length === 1 ? y[0] : undefined) : y;
        if (!isTensor(one))
          throw new Error(
            `act-qat: layer '${layer.name}' returned ${Array.isArray(y) ? y.length : 0} tensors, expected 1`,
          );
        return plan.output.apply(one, training);
      });
    layer.call = wrapped;
    wrappers.set(layer, wrapped);
  }
  const spec = (): QuantSpec => {
    const ranges = new Map<string, [number, number]>();
    for (const [name, q] of quants) {
      const r = q.range();
      if (r === undefined)
        throw new Error(`act-qat: no training batch has reached layer '${name}': its range is unknown`);
      ranges.set(name, r);
    }
    const r = input.range();
    if (r === undefined)
      throw new Error(`act-qat: no training batch has reached the model input '${inputLayer.name}'`);
    return { ranges, input: r };
  };
  let removed = false;
  return {
    points,
    quants,
    input,
    spec,
    remove() {
      if (removed) return;
      for (const [layer, w] of wrappers) {
        if (layer.call !== w)
          throw new Error(`act-qat: layer '${layer.name}': its call was replaced after fake quantization`);
      }
      for (const layer of wrappers.keys()) delete (layer as { call?: Call }).call;
      removed = true;
    },
  };
}

export interface ActQatTask extends TrainTask {
  /** Removes the fake quantization; returns the trained ranges for the int8 export. */
  finish(): QuantSpec;
  readonly qat: ActQat;
}

/**
 * `task` trained with `model`'s activations fake-quantized (insertActFakeQuant, in place from
 * now on). Composes with withWeightQat in either order and with any loss: the task is unchanged,
 * the model's forward is. finish() after training, before evaluating or exporting the model.
 */
export function withActQat(task: TrainTask, model: tfl.LayersModel, opts: ActQatOptions = {}): ActQatTask {
  const qat = insertActFakeQuant(model, opts);
  return {
    ...task,
    qat,
    finish() {
      qat.remove();
      return qat.spec();
    },
  };
}
