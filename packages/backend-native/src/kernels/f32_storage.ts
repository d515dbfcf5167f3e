/** Storage access for the elementwise kernels. */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeBackend } from '../backend.js';

/**
 * The Float32Array storage of every tensor, or null when one is not float32 in dtype *and* storage:
 * cpu's Cast from int32/bool to float32 relabels the integer array without converting it (Maximum's
 * gradient multiplies by such a mask), so the dtype alone does not tell.
 */
export function f32Storage(backend: NativeBackend, ts: readonly TensorInfo[]): Float32Array[] | null {
  const out: Float32Array[] = [];
  for (const t of ts) {
    const v = t.dtype === 'float32' ? backend.f32(t) : null;
    if (v === null) return null;
    out.push(v);
  }
  return out;
}
