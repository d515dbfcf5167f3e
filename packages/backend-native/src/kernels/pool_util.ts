/**
 * Shared glue of the 2-D pooling kernels: geometry in the 14-int layout native/pool_common.h reads,
 * [N, H, W, C, KH, KW, OH, OW, strideH, strideW, padT, padL, padB, padR], and the input checks.
 */
import { backend_util, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../binding.js';
import { isPadding, isPair, isRounding } from './conv_util.js';
import { allF32, int32s, type NativeKernel } from './kernel.js';

type PoolInfo = backend_util.Conv2DInfo;
type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;

/**
 * tfjs's pooling info for a 4-D NHWC input, or null when `x` is not 4-D or an attribute is not one
 * the native kernels take as given (fractional or missing sizes, strides or pads): cpu then serves
 * the call, its result or its error.
 */
export function poolInfo(
  x: TensorInfo,
  filterSize: [number, number] | number,
  strides: [number, number] | number,
  pad: Pad,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): PoolInfo | null {
  if (x.shape.length !== 4) return null;
  if (!isPair(filterSize) || !isPair(strides) || !isPadding(pad) || !isRounding(dimRoundingMode)) return null;
  return backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
}

/** A 1x1 window that keeps the shape: tfjs cpu answers with a zero-copy identity, which wins. */
export function isIdentityPool(info: PoolInfo): boolean {
  return (
    info.filterHeight === 1 && info.filterWidth === 1 && info.inShape.every((d, i) => d === info.outShape[i])
  );
}

/**
 * Packs the geometry, or returns null for what the native kernels leave to JS: channels-first data,
 * dilation, empty tensors, and windows lying wholly in padding (tfjs gives -Infinity or NaN there,
 * and oneDNN rejects padding as large as the window).
 */
export function poolGeometry(info: PoolInfo): Int32Array | null {
  if (info.dataFormat !== 'channelsLast') return null;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  if (info.inShape.some((d) => d === 0) || info.outShape.some((d) => d === 0)) return null;
  const kh = info.filterHeight;
  const kw = info.filterWidth;
  const { top, left } = info.padInfo;
  const padB = endPad(info.outHeight, info.strideHeight, kh, info.inHeight, top);
  const padR = endPad(info.outWidth, info.strideWidth, kw, info.inWidth, left);
  if (padB === null || padR === null) return null;
  if (top >= kh || padB >= kh || left >= kw || padR >= kw) return null;
  // null for a fractional or NaN field, which Int32Array would truncate into another geometry.
  return int32s([
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    kh,
    kw,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    top,
    left,
    padB,
    padR,
  ]);
}

// oneDNN checks OH = (H + padT + padB - KH) / strideH + 1 with integer division. tfjs's 'valid' with
// a stride that does not divide evenly needs a negative minimum there; any value up to stride-1 above
// it gives the same OH, so 0 does, and cells past the last window are then never read.
function endPad(out: number, stride: number, k: number, size: number, start: number): number | null {
  const min = (out - 1) * stride + k - size - start;
  if (min >= 0) return min;
  return min + stride - 1 >= 0 ? 0 : null;
}

/** True when two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A forward pooling kernel (MaxPool, AvgPool): one NHWC input, the pooled output. */
export function poolForwardKernel(
  kernelName: 'MaxPool' | 'AvgPool',
  entry: (addon: NativeAddon) => (x: Float32Array, out: Float32Array, geom: Int32Array) => void,
): NativeKernel {
  return {
    kernelName,
    run({ inputs, attrs, backend, addon }) {
      const { x } = inputs;
      if (x === undefined || !allF32(x)) return null;
      const a = attrs as unknown as {
        filterSize: [number, number] | number;
        strides: [number, number] | number;
        pad: Pad;
        dimRoundingMode?: 'floor' | 'round' | 'ceil';
      };
      const info = poolInfo(x, a.filterSize, a.strides, a.pad, a.dimRoundingMode);
      if (info === null || isIdentityPool(info)) return null;
      const geom = poolGeometry(info);
      const xv = backend.f32(x);
      if (geom === null || xv === null) return null;
      const out = backend.makeOutputF32(info.outShape);
      entry(addon).call(addon, xv, out.values, geom);
      return out.info;
    },
  };
}
