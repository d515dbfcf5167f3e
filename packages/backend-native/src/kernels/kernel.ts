/**
 * What a native kernel file exports, and the glue that registers it for backend `native` with the
 * cpu JS kernel as its fallback. A kernel returns null for inputs it does not handle (dtype, layout,
 * an activation it lacks): the JS kernel then runs, so nothing crashes for want of a native path.
 */
import {
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import type { NativeBackend } from '../backend.js';
import type { NativeAddon } from '../binding.js';

export interface NativeKernelArgs {
  inputs: NamedTensorInfoMap;
  attrs: NamedAttrMap;
  backend: NativeBackend;
  addon: NativeAddon;
}

export interface NativeKernel {
  /** tfjs kernel id, e.g. 'Conv2D'. */
  kernelName: string;
  /** The addon function it calls, when not named like the kernel (SplitV runs Slice). */
  addonName?: string;
  /** Computes natively, or returns null to defer to the cpu JS kernel. */
  run(args: NativeKernelArgs): TensorInfo | TensorInfo[] | null;
}

/** Calls that ran natively, per kernel name (tests use it to prove the native path ran). */
export const nativeCallCounts = new Map<string, number>();

/** Replaces the copied cpu kernels of `backendName` by the native ones (cpu code kept as fallback). */
export function registerNativeKernels(
  backendName: string,
  kernels: readonly NativeKernel[],
  addon: NativeAddon,
): void {
  for (const k of kernels) {
    // An addon built from older sources lacks newer kernels: keep the JS kernel for those.
    if (typeof addon[k.addonName ?? k.kernelName] !== 'function') continue;
    const cpu = getKernel(k.kernelName, 'cpu');
    if (cpu === undefined)
      throw new Error(`native kernel ${k.kernelName}: tfjs cpu backend has no such kernel`);
    const fallback: KernelFunc = cpu.kernelFunc;
    const kernelFunc: KernelFunc = (args) => {
      const backend = args.backend as NativeBackend;
      // cpu's Cast from int32/bool to float32 relabels the integer array without converting it;
      // native code must only ever see real Float32Array storage.
      for (const t of Object.values(args.inputs)) {
        if (t !== undefined && t !== null && t.dtype === 'float32' && backend.f32(t) === null)
          return fallback(args);
      }
      const out = k.run({ inputs: args.inputs, attrs: args.attrs ?? {}, backend, addon });
      if (out === null) return fallback(args);
      nativeCallCounts.set(k.kernelName, (nativeCallCounts.get(k.kernelName) ?? 0) + 1);
      return out;
    };
    const config: KernelConfig = { kernelName: k.kernelName, backendName, kernelFunc };
    // unregister first: registering over an existing kernel only warns and keeps the old one.
    if (getKernel(k.kernelName, backendName) !== undefined) unregisterKernel(k.kernelName, backendName);
    registerKernel(config);
  }
}

/** True when every tensor is float32 (native kernels are float32 only). */
export function allF32(...ts: (TensorInfo | undefined)[]): boolean {
  return ts.every((t) => t === undefined || t.dtype === 'float32');
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * True for an integer the addon can take (int32): not NaN, not 2.5 (Int32Array.from would truncate it
 * to 2), not 2^31 (it would wrap), and at least `min`.
 */
export function isInt32(v: unknown, min = -(2 ** 31)): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 2 ** 31 - 1;
}

/** True for an array of `len` entries (any length when left out), each isInt32(., min). */
export function isIntArray(v: unknown, len?: number, min?: number): v is number[] {
  return Array.isArray(v) && (len === undefined || v.length === len) && v.every((x) => isInt32(x, min));
}

/** The values packed for the addon, or null when one is no int32 integer (see isInt32). */
export function int32s(values: readonly number[]): Int32Array | null {
  return isIntArray(values) ? Int32Array.from(values) : null;
}
