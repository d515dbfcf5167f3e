/**
 * The float32 unary kernels: out = f(x), same shape. One table makes them all; each has its own native
 * entry (native/<Kernel>.cc) that states f with tfjs's NaN and signed-zero behaviour. Step and LeakyRelu
 * also pass their `alpha` attribute.
 */
import { f32Storage } from './f32_storage.js';
import type { NativeKernel } from './kernel.js';

const plainNames = [
  'Relu',
  'Relu6',
  'Elu',
  'Exp',
  'Log',
  'Neg',
  'Square',
  'Sqrt',
  'Rsqrt',
  'Reciprocal',
  'Abs',
  'Sigmoid',
  'Tanh',
] as const;
const alphaNames = ['Step', 'LeakyRelu'] as const;
type UnaryName = (typeof plainNames)[number] | (typeof alphaNames)[number];

function unaryKernel(kernelName: UnaryName): NativeKernel {
  return {
    kernelName,
    run({ inputs, attrs, backend, addon }) {
      const { x } = inputs;
      if (x === undefined) return null;
      const xv = f32Storage(backend, [x])?.[0];
      if (xv === undefined) return null;
      if (kernelName === 'Step' || kernelName === 'LeakyRelu') {
        const alpha = attrs['alpha'];
        if (typeof alpha !== 'number') return null;
        const out = backend.makeOutputF32(x.shape);
        addon[kernelName](xv, out.values, alpha);
        return out.info;
      }
      const out = backend.makeOutputF32(x.shape);
      addon[kernelName](xv, out.values);
      return out.info;
    },
  };
}

export const unaryKernels: readonly NativeKernel[] = [...plainNames, ...alphaNames].map(unaryKernel);
