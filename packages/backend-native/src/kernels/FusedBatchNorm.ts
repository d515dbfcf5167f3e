/**
 * FusedBatchNorm (tf.batchNorm): offset + (x - mean) * scale / sqrt(variance + varianceEpsilon). Native
 * when each parameter is per channel (length 1 or the last dim of x) or per element (the size of x);
 * the cpu kernel's other cyclic layouts fall back.
 */
import { f32Storage } from './f32_storage.js';
import { type NativeKernel, sizeOf } from './kernel.js';

// The cpu kernel's stand-ins for a missing offset / scale.
const ZERO = new Float32Array([0]);
const ONE = new Float32Array([1]);

export const fusedBatchNorm: NativeKernel = {
  kernelName: 'FusedBatchNorm',
  run({ inputs, attrs, backend, addon }) {
    const { x, mean, variance, offset, scale } = inputs;
    if (x === undefined || mean === undefined || variance === undefined) return null;
    // tfjs cpu refuses parameters of different ranks (whatever their sizes): it serves those calls.
    const rank = mean.shape.length;
    if ([variance, offset, scale].some((p) => p !== undefined && p.shape.length !== rank)) return null;
    const eps = attrs['varianceEpsilon'];
    if (eps !== undefined && eps !== null && typeof eps !== 'number') return null;
    const n = sizeOf(x.shape);
    const c = x.shape[x.shape.length - 1] ?? 1;
    const given = [x, mean, variance, offset, scale].filter((t) => t !== undefined);
    if (n === 0 || given.some((p) => ![1, c, n].includes(sizeOf(p.shape)))) return null;
    const req = f32Storage(backend, [x, mean, variance]);
    const ov = offset === undefined ? ZERO : f32Storage(backend, [offset])?.[0];
    const sv = scale === undefined ? ONE : f32Storage(backend, [scale])?.[0];
    if (req === null || ov === undefined || sv === undefined) return null;
    const out = backend.makeOutputF32(x.shape);
    addon.FusedBatchNorm(req[0]!, req[1]!, req[2]!, ov, sv, out.values, c, eps ?? 0.001);
    return out.info;
  },
};
