/**
 * The broadcasting binary kernels (Add, Sub, Multiply, RealDiv, Maximum, Minimum, SquaredDifference,
 * Pow) for float32. They share one contract, so one table makes them; each has its own native entry
 * (native/<Kernel>.cc) that states its scalar function. int32/bool operands (tfjs sends them to Add and
 * Multiply, and float32-labelled integer masks from Cast) and ranks above 6 go to the cpu JS kernel.
 */
import { backend_util } from '@tensorflow/tfjs-core';
import { f32Storage } from './f32_storage.js';
import type { NativeKernel } from './kernel.js';

const binaryNames = [
  'Add',
  'Sub',
  'Multiply',
  'RealDiv',
  'Maximum',
  'Minimum',
  'SquaredDifference',
  'Pow',
] as const;

/** Highest broadcast rank of the native loop (kMaxBroadcastRank in native/elementwise.h). */
const MAX_RANK = 6;
// [rankA, rankB, ...aShape, ...bShape], refilled per call: two fresh shape arrays per call cost more
// (~6 us) than a small op itself. The addon reads it synchronously, so one array per length serves
// every call; the length is exact because the addon ties it to the two ranks.
const geoms = Array.from({ length: 3 + 2 * MAX_RANK }, (_, n) => new Int32Array(n));

function binaryKernel(kernelName: (typeof binaryNames)[number]): NativeKernel {
  return {
    kernelName,
    run({ inputs, backend, addon }) {
      const { a, b } = inputs;
      if (a === undefined || b === undefined) return null;
      const vals = f32Storage(backend, [a, b]);
      if (vals === null) return null;
      // Throws tfjs's own error for incompatible shapes, as the cpu kernel would.
      const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      if (shape.length > MAX_RANK) return null; // a and b have at most this rank too
      const out = backend.makeOutputF32(shape);
      const geom = geoms[2 + a.shape.length + b.shape.length]!;
      geom[0] = a.shape.length;
      geom[1] = b.shape.length;
      geom.set(a.shape, 2);
      geom.set(b.shape, 2 + a.shape.length);
      addon[kernelName](vals[0]!, vals[1]!, out.values, geom);
      return out.info;
    },
  };
}

export const binaryKernels: readonly NativeKernel[] = binaryNames.map(binaryKernel);
