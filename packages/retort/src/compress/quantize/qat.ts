/**
 * Quantization-aware training of the weights (Jacob et al., CVPR 2018, with the straight-through
 * estimator): every step runs forward and backward on int8 fake-quantized kernels (symmetric,
 * per output channel) while float "master" weights accumulate the updates. Implemented as a
 * wrapper of the trainer's task, so any loss (CE, KD from the fp32 teacher: quantized
 * distillation, Polino et al., ICLR 2018) trains this way:
 *   prepare: save the float kernels, write their fake-quantized values;
 *   step:    the optimizer updates the quantized values with the gradient taken there (STE);
 *   release: master += (updated - quantized), so the float weights receive exactly the update.
 * Activations are quantized after training by calibration (export/onnx.ts calibrateRanges), or
 * fake-quantized in training too (act-qat.ts withActQat, composed with this wrapper). Each kernel
 * can have a grid of its own (`qmax` by layer): mixed-precision QAT (compress/mixed-precision.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { StepInput, TrainTask } from '../../train/trainer.js';
import { prunableKernels } from '../prune/magnitude.js';

/**
 * Symmetric int8 fake quantization of a kernel whose last axis is the output, per output channel
 * or with one scale for the whole kernel (`perTensor`), on the grid [-qmax, qmax] of the export
 * target (export/onnx/target.ts: 63 portable, 127 vnni): the grid of the int8 files
 * (qparams.ts quantizeInt8, scale max |w| / qmax), computed here in float32 tensor ops and rounded
 * half to even, so a weight within a float32 rounding of a half step may take the other neighbour
 * than in the files; weights this puts on a grid come back from quantizeInt8 at the same qmax and
 * granularity as the same integers.
 */
export function fakeQuantKernel(k: tf.Tensor, qmax = 127, perTensor = false): tf.Tensor {
  return tf.tidy(() => {
    const axes = perTensor ? undefined : Array.from({ length: k.rank - 1 }, (_, i) => i);
    const scale = tf.maximum(tf.div(tf.max(tf.abs(k), axes), qmax), 1e-12);
    return tf.mul(tf.clipByValue(tf.round(tf.div(k, scale)), -qmax, qmax), scale);
  });
}

export interface QatTask extends TrainTask {
  /** Writes the float master weights back (after training, before export). */
  finish(): void;
}

/**
 * `qmax`: the int8 weight grid of the export target the weights are trained for, the same for every
 * kernel (a number), or one grid per layer (by layer name; mixed precision): then only the kernels
 * of the named layers train quantized, the others stay float. A name that is no Conv2D,
 * DepthwiseConv2D or Dense layer of `model` throws.
 */
export function withWeightQat(
  task: TrainTask,
  model: tfl.LayersModel,
  qmax: number | ReadonlyMap<string, number> = 127,
): QatTask {
  const all = prunableKernels(model, typeof qmax === 'number' ? undefined : [...qmax.keys()]);
  const kernels = all.map((k) => k.kernel);
  const grids = all.map((k) => (typeof qmax === 'number' ? qmax : qmax.get(k.layer)!));
  let master: tf.Tensor[] = kernels.map((k) => tf.keep(k.clone()));
  let quantized: tf.Tensor[] = [];
  return {
    ...task,
    prepare(input: StepInput): void | Promise<void> {
      quantized = kernels.map((k, i) => {
        const q = tf.keep(fakeQuantKernel(master[i]!, grids[i]!));
        k.assign(q);
        return q;
      });
      return task.prepare?.(input);
    },
    release() {
      task.release?.();
      const next = kernels.map((k, i) =>
        tf.keep(tf.tidy(() => tf.add(master[i]!, tf.sub(k, quantized[i]!)))),
      );
      tf.dispose([...master, ...quantized]);
      master = next;
      quantized = [];
    },
    finish() {
      kernels.forEach((k, i) => {
        k.assign(master[i]!);
      });
    },
  };
}
