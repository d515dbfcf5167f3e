/**
 * BatchNorm layer of the zoo: tfjs-layers' BatchNormalization (same weights, names, order and
 * serialized class, so saved models load as the standard layer in a browser) whose training-mode
 * forward is the fused `RetortBatchNormTrain` kernel of retort-kd-native instead of tfjs's
 * moments + batchNormalization composite: two passes over the activation forward and two backward
 * instead of about twelve kernels, which is what made ResNet/WRN training elementwise-bound.
 *
 * Training mode also updates the running variance with the unbiased batch variance, as PyTorch's
 * BatchNorm2d does (tfjs uses the biased one); inference is the inherited tfjs code.
 * Falls back to the inherited code when the active backend lacks the kernel (webgl, wasm) or the
 * layer is not the plain per-last-axis, centred and scaled form.
 */

import { getBackend, getKernel, type Tensor, tidy } from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { BatchNormalization } from '@tensorflow/tfjs-layers/dist/layers/normalization.js';
import { batchNormTrain } from 'retort-kd-native';

type BatchNormArgs = NonNullable<Parameters<typeof tfl.layers.batchNormalization>[0]>;
type Kwargs = Parameters<BatchNormalization['call']>[1];
interface Variable {
  read(): Tensor;
  write(v: Tensor): void;
}
/** The private state of tfjs's layer that the fused path reads. */
interface BnState {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: Variable;
  beta: Variable;
  movingMean: Variable;
  movingVariance: Variable;
}

// The class is not exported by tfjs-layers' public API; its instances carry it. (A deep import would
// load a second copy of tfjs-layers in Node, whose main entry is a CommonJS bundle.)
const Base = Object.getPrototypeOf(tfl.layers.batchNormalization({}))
  .constructor as typeof BatchNormalization;

export class FusedBatchNorm extends Base {
  override call(inputs: Tensor | Tensor[], kwargs: Kwargs): Tensor | Tensor[] {
    const s = this as unknown as BnState;
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const training = kwargs['training'] === true;
    if (
      !training ||
      x === undefined ||
      !s.center ||
      !s.scale ||
      (s.axis !== -1 && s.axis !== x.rank - 1) ||
      getKernel('RetortBatchNormTrain', getBackend()) === undefined
    )
      return super.call(inputs, kwargs);
    return tidy(() => {
      const r = batchNormTrain(
        x,
        s.gamma.read(),
        s.beta.read(),
        s.movingMean.read(),
        s.movingVariance.read(),
        { epsilon: s.epsilon, momentum: s.momentum },
      );
      s.movingMean.write(r.runMean);
      s.movingVariance.write(r.runVar);
      return r.y;
    });
  }
}

/** A zoo batch-norm layer (the arguments of tfjs's `tf.layers.batchNormalization`). */
export function fusedBatchNorm(args: BatchNormArgs): FusedBatchNorm {
  return new FusedBatchNorm(args);
}
