/**
 * Fused optimizer updates as tfjs kernels, so an optimizer step is one pass per variable instead of
 * a dozen elementwise ops. Registered for `cpu` here in JS (the reference, and the fallback of
 * `native`); the native versions live in kernels/RetortAdamUpdate.ts and kernels/RetortSgdUpdate.ts.
 * Formulas follow torch.optim.Adam / AdamW / SGD.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import {
  engine,
  getKernel,
  type NamedAttrMap,
  registerKernel,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { f32 as f32Of } from './js_kernel.js';

export const ADAM_UPDATE = 'RetortAdamUpdate';
export const SGD_UPDATE = 'RetortSgdUpdate';

export interface AdamUpdateAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 / (1 - beta1^t) for step t (1-based). */
  c1: number;
  /** 1 / (1 - beta2^t). */
  c2: number;
  weightDecay: number;
  /** AdamW: decay the parameter directly instead of adding wd*p to the gradient. */
  decoupled: boolean;
}

export interface SgdUpdateAttrs {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** First step: the momentum buffer starts as the gradient (PyTorch). */
  firstStep: boolean;
}

const f32 = (backend: MathBackendCPU, t: TensorInfo) => f32Of(backend, t, 'optimizer update');

function adamJs(args: {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo[] {
  const backend = args.backend as MathBackendCPU;
  const { p, g, m, v } = args.inputs as Record<'p' | 'g' | 'm' | 'v', TensorInfo>;
  const a = args.attrs as unknown as AdamUpdateAttrs;
  const P = f32(backend, p);
  const G = f32(backend, g);
  const M = f32(backend, m);
  const V = f32(backend, v);
  const n = P.length;
  const oP = new Float32Array(n);
  const oM = new Float32Array(n);
  const oV = new Float32Array(n);
  const decay = a.decoupled ? 1 - a.lr * a.weightDecay : 1;
  const l2 = a.decoupled ? 0 : a.weightDecay;
  for (let i = 0; i < n; i++) {
    const gi = G[i]! + l2 * P[i]!;
    const mi = a.beta1 * M[i]! + (1 - a.beta1) * gi;
    const vi = a.beta2 * V[i]! + (1 - a.beta2) * gi * gi;
    oM[i] = mi;
    oV[i] = vi;
    oP[i] = P[i]! * decay - (a.lr * (mi * a.c1)) / (Math.sqrt(vi * a.c2) + a.eps);
  }
  return [oP, oM, oV].map((vals) => backend.makeTensorInfo(p.shape, 'float32', vals));
}

function sgdJs(args: {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: NamedAttrMap;
}): TensorInfo[] {
  const backend = args.backend as MathBackendCPU;
  const { p, g, buf } = args.inputs as Record<'p' | 'g' | 'buf', TensorInfo>;
  const a = args.attrs as unknown as SgdUpdateAttrs;
  const P = f32(backend, p);
  const G = f32(backend, g);
  const B = f32(backend, buf);
  const n = P.length;
  const oP = new Float32Array(n);
  const oB = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const gi = G[i]! + a.weightDecay * P[i]!;
    const bi = a.firstStep ? gi : a.momentum * B[i]! + (1 - a.dampening) * gi;
    oB[i] = bi;
    oP[i] = P[i]! - a.lr * (a.nesterov ? gi + a.momentum * bi : bi);
  }
  return [oP, oB].map((vals) => backend.makeTensorInfo(p.shape, 'float32', vals));
}

/** Registers the JS versions for backend `cpu` (idempotent). Call before copying cpu kernels. */
export function registerCpuOptimizerKernels(): void {
  if (getKernel(ADAM_UPDATE, 'cpu') === undefined) {
    registerKernel({ kernelName: ADAM_UPDATE, backendName: 'cpu', kernelFunc: adamJs as never });
  }
  if (getKernel(SGD_UPDATE, 'cpu') === undefined) {
    registerKernel({ kernelName: SGD_UPDATE, backendName: 'cpu', kernelFunc: sgdJs as never });
  }
}

/** True when the active backend has the fused kernel `name`. */
export function hasFusedKernel(name: string): boolean {
  return getKernel(name, engine().backendName) !== undefined;
}

/** Fused Adam/AdamW step: returns [p', m', v'] (float32, same shape as p). */
export function adamUpdate(
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  attrs: AdamUpdateAttrs,
): [Tensor, Tensor, Tensor] {
  return engine().runKernel(ADAM_UPDATE, { p, g, m, v }, attrs as unknown as NamedAttrMap) as unknown as [
    Tensor,
    Tensor,
    Tensor,
  ];
}

/** Fused SGD step: returns [p', buf']. */
export function sgdUpdate(p: Tensor, g: Tensor, buf: Tensor, attrs: SgdUpdateAttrs): [Tensor, Tensor] {
  return engine().runKernel(SGD_UPDATE, { p, g, buf }, attrs as unknown as NamedAttrMap) as unknown as [
    Tensor,
    Tensor,
  ];
}
