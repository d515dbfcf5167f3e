/**
 * Batch normalization in training mode as two tfjs kernels and one differentiable op, so a BN layer
 * costs two passes forward and two backward instead of the ~12 elementwise kernels of tfjs-layers'
 * moments + batchNormalization composite (which made ResNet training elementwise-bound).
 *
 * - `RetortBatchNormTrain` {x, gamma, beta, runMean, runVar} -> [y, mean, invStd, runMean', runVar']:
 *   statistics over every axis but the last (NHWC channels), y = gamma * (x - mean) * invStd + beta,
 *   and the running statistics updated as PyTorch's BatchNorm2d does (unbiased batch variance) with
 *   tfjs's momentum convention (`momentum` is the weight of the old value: 0.9 = PyTorch's 0.1).
 * - `RetortBatchNormTrainGrad` {dy, x, gamma, mean, invStd} -> [dx, dgamma, dbeta].
 *
 * The JS versions here are registered for `cpu` (the reference, and the fallback of `native`); the
 * native ones are kernels/RetortBatchNormTrain.ts. Both compute in double and round once.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import {
  engine,
  getGradient,
  getKernel,
  type NamedAttrMap,
  registerGradient,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { f32, type KernelArgs } from './js_kernel.js';

export const BN_TRAIN = 'RetortBatchNormTrain';
export const BN_TRAIN_GRAD = 'RetortBatchNormTrainGrad';

export interface BatchNormTrainAttrs {
  epsilon: number;
  /** Weight of the old running value (tfjs/Keras convention; PyTorch momentum m is 1 - m here). */
  momentum: number;
}

/** Channels (last dim) and rows of x; checks the per-channel parameters' lengths. */
export function bnLayout(xShape: readonly number[], params: Record<string, TensorInfo>): [number, number] {
  const c = xShape[xShape.length - 1];
  if (xShape.length < 2 || c === undefined || c < 1)
    throw new Error(`batchNormTrain: x must have rank >= 2 with channels last, got [${xShape.join(', ')}]`);
  const n = xShape.reduce((a, b) => a * b, 1);
  if (n === 0) throw new Error('batchNormTrain: x is empty');
  for (const [name, t] of Object.entries(params)) {
    if (t.shape.length !== 1 || t.shape[0] !== c)
      throw new Error(`batchNormTrain: ${name} must have shape [${c}], got [${t.shape.join(', ')}]`);
  }
  return [c, n / c];
}

function trainJs({ inputs, backend: b, attrs }: KernelArgs): TensorInfo[] {
  const backend = b as MathBackendCPU;
  const { x, gamma, beta, runMean, runVar } = inputs as Record<
    'x' | 'gamma' | 'beta' | 'runMean' | 'runVar',
    TensorInfo
  >;
  const { epsilon, momentum } = attrs as unknown as BatchNormTrainAttrs;
  const [c, rows] = bnLayout(x.shape, { gamma, beta, runMean, runVar });
  const X = f32(backend, x, BN_TRAIN);
  const G = f32(backend, gamma, BN_TRAIN);
  const B = f32(backend, beta, BN_TRAIN);
  const RM = f32(backend, runMean, BN_TRAIN);
  const RV = f32(backend, runVar, BN_TRAIN);
  const s1 = new Float64Array(c);
  const s2 = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const v = X[r * c + j]!;
      s1[j]! += v;
      s2[j]! += v * v;
    }
  }
  const mean = new Float32Array(c);
  const inv = new Float32Array(c);
  const rm = new Float32Array(c);
  const rv = new Float32Array(c);
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  const unbias = rows > 1 ? rows / (rows - 1) : 1;
  for (let j = 0; j < c; j++) {
    const m = s1[j]! / rows;
    const variance = Math.max(0, s2[j]! / rows - m * m);
    const iv = 1 / Math.sqrt(variance + epsilon);
    mean[j] = m;
    inv[j] = iv;
    scale[j] = G[j]! * iv;
    shift[j] = B[j]! - m * scale[j]!;
    rm[j] = momentum * RM[j]! + (1 - momentum) * m;
    rv[j] = momentum * RV[j]! + (1 - momentum) * variance * unbias;
  }
  const y = new Float32Array(X.length);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) y[r * c + j] = X[r * c + j]! * scale[j]! + shift[j]!;
  }
  return [
    backend.makeTensorInfo(x.shape, 'float32', y),
    ...[mean, inv, rm, rv].map((v) => backend.makeTensorInfo([c], 'float32', v)),
  ];
}

function gradJs({ inputs, backend: b }: KernelArgs): TensorInfo[] {
  const backend = b as MathBackendCPU;
  const { dy, x, gamma, mean, invStd } = inputs as Record<
    'dy' | 'x' | 'gamma' | 'mean' | 'invStd',
    TensorInfo
  >;
  const [c, rows] = bnLayout(x.shape, { gamma, mean, invStd });
  const DY = f32(backend, dy, BN_TRAIN_GRAD);
  const X = f32(backend, x, BN_TRAIN_GRAD);
  const G = f32(backend, gamma, BN_TRAIN_GRAD);
  const M = f32(backend, mean, BN_TRAIN_GRAD);
  const IV = f32(backend, invStd, BN_TRAIN_GRAD);
  const sdy = new Float64Array(c);
  const sdyx = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const d = DY[r * c + j]!;
      sdy[j]! += d;
      sdyx[j]! += d * (X[r * c + j]! - M[j]!);
    }
  }
  const dgamma = new Float32Array(c);
  const dbeta = new Float32Array(c);
  const k = new Float64Array(c);
  const kx = new Float64Array(c);
  const k0 = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    const iv = IV[j]!;
    const dg = sdyx[j]! * iv;
    dgamma[j] = dg;
    dbeta[j] = sdy[j]!;
    const g = G[j]! * iv;
    k[j] = g;
    kx[j] = (-g * dg * iv) / rows;
    k0[j] = (-g * sdy[j]!) / rows;
  }
  const dx = new Float32Array(X.length);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const i = r * c + j;
      dx[i] = k[j]! * DY[i]! + kx[j]! * (X[i]! - M[j]!) + k0[j]!;
    }
  }
  return [
    backend.makeTensorInfo(x.shape, 'float32', dx),
    backend.makeTensorInfo([c], 'float32', dgamma),
    backend.makeTensorInfo([c], 'float32', dbeta),
  ];
}

/** Registers the JS kernels for `cpu` and the gradient (idempotent). Call before copying cpu kernels. */
export function registerCpuBatchNormKernels(): void {
  if (getKernel(BN_TRAIN, 'cpu') === undefined)
    registerKernel({ kernelName: BN_TRAIN, backendName: 'cpu', kernelFunc: trainJs as never });
  if (getKernel(BN_TRAIN_GRAD, 'cpu') === undefined)
    registerKernel({ kernelName: BN_TRAIN_GRAD, backendName: 'cpu', kernelFunc: gradJs as never });
  if (getGradient(BN_TRAIN) === undefined) {
    registerGradient({
      kernelName: BN_TRAIN,
      inputsToSave: ['x', 'gamma'],
      outputsToSave: [false, true, true, false, false],
      // Only y carries a gradient: mean and invStd feed the running statistics, which are not
      // differentiated (as in PyTorch, where they are buffers).
      gradFunc: (dys: Tensor | Tensor[], saved: Tensor[]) => {
        const dy = (Array.isArray(dys) ? dys[0] : dys) as Tensor;
        const [x, gamma, mean, invStd] = saved as [Tensor, Tensor, Tensor, Tensor];
        // Computed eagerly: tfjs calls gradFunc once per node and each returned closure inside its
        // own tidy, so tensors made lazily in the first closure would be gone for the others.
        const [dx, dgamma, dbeta] = engine().runKernel(BN_TRAIN_GRAD, {
          dy,
          x,
          gamma,
          mean,
          invStd,
        }) as unknown as [Tensor, Tensor, Tensor];
        return {
          x: () => dx,
          gamma: () => dgamma,
          beta: () => dbeta,
          runMean: () => engine().makeTensor(new Float32Array(mean.size), mean.shape, 'float32') as Tensor,
          runVar: () => engine().makeTensor(new Float32Array(mean.size), mean.shape, 'float32') as Tensor,
        };
      },
    });
  }
}

export interface BatchNormTrainResult {
  /** Normalized, scaled and shifted x (differentiable w.r.t. x, gamma, beta). */
  y: Tensor;
  /** Batch mean and 1 / sqrt(batch variance + epsilon) per channel. */
  mean: Tensor;
  invStd: Tensor;
  /** The updated running mean and (unbiased) running variance, to assign to the layer's buffers. */
  runMean: Tensor;
  runVar: Tensor;
}

/** Training-mode batch norm over the last axis of x (see the file comment). */
export function batchNormTrain(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  runMean: Tensor,
  runVar: Tensor,
  attrs: BatchNormTrainAttrs,
): BatchNormTrainResult {
  bnLayout(x.shape, { gamma, beta, runMean, runVar });
  const [y, mean, invStd, rm, rv] = engine().runKernel(
    BN_TRAIN,
    { x, gamma, beta, runMean, runVar },
    attrs as unknown as NamedAttrMap,
  ) as unknown as [Tensor, Tensor, Tensor, Tensor, Tensor];
  return { y, mean, invStd, runMean: rm, runVar: rv };
}
