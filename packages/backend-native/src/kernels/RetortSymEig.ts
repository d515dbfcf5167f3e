/** Native batched symmetric eigendecomposition and its gradient (see custom/symeig_kernels.ts). */
import { symEigLayout } from '../custom/symeig_kernels.js';
import { allF32, type NativeKernel } from './kernel.js';

export const retortSymEig: NativeKernel = {
  kernelName: 'RetortSymEig',
  run({ inputs, backend, addon }) {
    const { x } = inputs;
    if (x === undefined || !allF32(x)) return null;
    const [b, n] = symEigLayout(x.shape);
    const vals = backend.makeOutputF32([b, n]);
    const lo = backend.makeOutputF32([b, n]);
    const vecs = backend.makeOutputF32([b, n, n]);
    addon.RetortSymEig(backend.f32(x)!, vals.values, lo.values, vecs.values, n);
    return [vals.info, lo.info, vecs.info];
  },
};

export const retortSymEigGrad: NativeKernel = {
  kernelName: 'RetortSymEigGrad',
  run({ inputs, backend, addon }) {
    const { values, valuesLo, vectors, gValues, gVectors } = inputs;
    if (
      values === undefined ||
      valuesLo === undefined ||
      vectors === undefined ||
      gValues === undefined ||
      gVectors === undefined
    )
      return null;
    if (!allF32(values, valuesLo, vectors, gValues, gVectors)) return null;
    const [b, n] = symEigLayout(vectors.shape, 'RetortSymEigGrad');
    const gx = backend.makeOutputF32([b, n, n]);
    addon.RetortSymEigGrad(
      backend.f32(values)!,
      backend.f32(valuesLo)!,
      backend.f32(vectors)!,
      backend.f32(gValues)!,
      backend.f32(gVectors)!,
      gx.values,
      n,
    );
    return [gx.info];
  },
};
