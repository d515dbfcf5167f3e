/** Digests that key teacher caches. */
import { createHash } from 'node:crypto';
import type * as tfl from '@tensorflow/tfjs-layers';

/** SHA-256 of the model's layer graph (its JSON topology), hex, 16 characters. */
export function topologyDigest(model: tfl.LayersModel): string {
  return createHash('sha256')
    .update(JSON.stringify(model.toJSON(null, false)))
    .digest('hex')
    .slice(0, 16);
}

/** SHA-256 over every weight's shape and bytes, in order. */
export function weightsDigest(model: tfl.LayersModel): string {
  const h = createHash('sha256');
  for (const w of model.weights) {
    const v = w.read().dataSync() as Float32Array;
    h.update(w.shape.join('x'));
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest('hex');
}
