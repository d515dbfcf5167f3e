/**
 * Shared checks of the ONNX export tests: zoo models with non-trivial batch-norm statistics, and
 * the top-1 agreement and logit error of an exported model in onnxruntime against tfjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as ort from 'onnxruntime-node';

/** Gives every BN layer random running statistics and affine parameters (fresh ones are 0/1). */
export function randomizeBn(model: tfl.LayersModel): void {
  let seed = 1;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const c = layer.getWeights()[0]!.shape[0]!;
    layer.setWeights([
      tf.randomUniform([c], 0.5, 1.5, 'float32', seed++),
      tf.randomNormal([c], 0, 0.2, 'float32', seed++),
      tf.randomNormal([c], 0, 0.2, 'float32', seed++),
      tf.randomUniform([c], 0.5, 2, 'float32', seed++),
    ]);
  }
}

/** Top-1 agreement of an ONNX model with the tfjs model, and its largest logit error / logit range. */
export async function agreement(model: tfl.LayersModel, bytes: Uint8Array, x: tf.Tensor) {
  const session = await ort.InferenceSession.create(bytes);
  const want = (model.predict(x) as tf.Tensor).dataSync();
  const res = await session.run({ input: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape) });
  await session.release();
  const got = res['output']!.data as Float32Array;
  const k = got.length / x.shape[0]!;
  let agree = 0;
  let err = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.shape[0]!; i++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < k; j++) {
      const w = want[i * k + j]!;
      err = Math.max(err, Math.abs(got[i * k + j]! - w));
      lo = Math.min(lo, w);
      hi = Math.max(hi, w);
      if (w > want[i * k + a]!) a = j;
      if (got[i * k + j]! > got[i * k + b]!) b = j;
    }
    if (a === b) agree++;
  }
  return { agree: agree / x.shape[0]!, relErr: err / (hi - lo) };
}
