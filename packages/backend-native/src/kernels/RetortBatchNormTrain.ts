/** Native training-mode batch norm and its gradient (see custom/batchnorm_kernels.ts). */
import { type BatchNormTrainAttrs, bnLayout } from '../custom/batchnorm_kernels.js';
import { allF32, type NativeKernel } from './kernel.js';

export const retortBatchNormTrain: NativeKernel = {
  kernelName: 'RetortBatchNormTrain',
  run({ inputs, attrs, backend, addon }) {
    const { x, gamma, beta, runMean, runVar } = inputs;
    if (
      x === undefined ||
      gamma === undefined ||
      beta === undefined ||
      runMean === undefined ||
      runVar === undefined
    )
      return null;
    if (!allF32(x, gamma, beta, runMean, runVar)) return null;
    const [c] = bnLayout(x.shape, { gamma, beta, runMean, runVar });
    const a = attrs as unknown as BatchNormTrainAttrs;
    const y = backend.makeOutputF32(x.shape);
    const stats = [0, 1, 2, 3].map(() => backend.makeOutputF32([c]));
    const [mean, inv, rm, rv] = stats as [
      (typeof stats)[0],
      (typeof stats)[0],
      (typeof stats)[0],
      (typeof stats)[0],
    ];
    addon.RetortBatchNormTrain(
      backend.f32(x)!,
      backend.f32(gamma)!,
      backend.f32(beta)!,
      backend.f32(runMean)!,
      backend.f32(runVar)!,
      y.values,
      mean.values,
      inv.values,
      rm.values,
      rv.values,
      c,
      a.epsilon,
      a.momentum,
    );
    return [y.info, mean.info, inv.info, rm.info, rv.info];
  },
};

export const retortBatchNormTrainGrad: NativeKernel = {
  kernelName: 'RetortBatchNormTrainGrad',
  run({ inputs, backend, addon }) {
    const { dy, x, gamma, mean, invStd } = inputs;
    if (
      dy === undefined ||
      x === undefined ||
      gamma === undefined ||
      mean === undefined ||
      invStd === undefined
    )
      return null;
    if (!allF32(dy, x, gamma, mean, invStd)) return null;
    const [c] = bnLayout(x.shape, { gamma, mean, invStd });
    const dx = backend.makeOutputF32(x.shape);
    const dgamma = backend.makeOutputF32([c]);
    const dbeta = backend.makeOutputF32([c]);
    addon.RetortBatchNormTrainGrad(
      backend.f32(dy)!,
      backend.f32(x)!,
      backend.f32(gamma)!,
      backend.f32(mean)!,
      backend.f32(invStd)!,
      dx.values,
      dgamma.values,
      dbeta.values,
      c,
    );
    return [dx.info, dgamma.info, dbeta.info];
  },
};
