/**
 * Geometry of a 2-D convolution in the 17-int layout native/conv_common.h reads:
 * [N, H, W, C, KH, KW, OC|M, OH, OW, strideH, strideW, dilationH, dilationW, padT, padL, padB, padR].
 */
import { backend_util, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../binding.js';
import { allF32, int32s, isInt32, isIntArray, type NativeKernel } from './kernel.js';

type ConvInfo = backend_util.Conv2DInfo;

/**
 * Packs tfjs's convInfo, or returns null when oneDNN cannot express it (channels-first data, a
 * bottom/right padding that would have to be negative, or an empty tensor).
 */
export function convGeometry(info: ConvInfo, depthwise: boolean): Int32Array | null {
  if (info.dataFormat !== 'channelsLast') return null;
  const effH = (info.filterHeight - 1) * info.dilationHeight + 1;
  const effW = (info.filterWidth - 1) * info.dilationWidth + 1;
  // oneDNN checks OH = (H + padT + padB - effH) / strideH + 1 with integer division; tfjs's 'valid'
  // with stride > 1 can need a negative minimum there, and any value up to stride-1 above works too.
  const padB = endPad(info.outHeight, info.strideHeight, effH, info.inHeight, info.padInfo.top);
  const padR = endPad(info.outWidth, info.strideWidth, effW, info.inWidth, info.padInfo.left);
  if (padB === null || padR === null) return null;
  const oc = depthwise ? info.outChannels / info.inChannels : info.outChannels;
  // null when a field is fractional or NaN (fractional strides, pads or sizes), which Int32Array
  // would truncate into another geometry than the one cpu computes with.
  const geom = int32s([
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.filterHeight,
    info.filterWidth,
    oc,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
    padB,
    padR,
  ]);
  // Empty tensors (any size 0) stay with the JS kernel: the addon takes sizes >= 1 only.
  return geom === null || geom.subarray(0, 13).some((v) => v < 1) ? null : geom;
}

function endPad(out: number, stride: number, eff: number, size: number, start: number): number | null {
  const min = (out - 1) * stride + eff - size - start;
  if (min >= 0) return min;
  return min + stride - 1 >= 0 ? 0 : null;
}

export type Shape4 = [number, number, number, number];

/** The attributes every conv-family kernel shares (the rest differ per kernel). */
interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
}

/** A window size, stride or dilation as tfjs takes it: one positive integer, or one per spatial dim. */
export function isPair(v: unknown): boolean {
  return isInt32(v, 1) || isIntArray(v, 2, 1);
}

/** 'same', 'valid', one non-negative integer, or explicit [[0, 0], [top, bottom], [left, right], [0, 0]]. */
export function isPadding(v: unknown): boolean {
  if (v === 'same' || v === 'valid' || isInt32(v, 0)) return true;
  return Array.isArray(v) && v.length === 4 && v.every((p) => isIntArray(p, 2, 0));
}

/** No rounding (undefined), or one tfjs knows. */
export function isRounding(v: unknown): boolean {
  return v === undefined || v === null || v === 'floor' || v === 'round' || v === 'ceil';
}

/** The shape of one conv-family kernel: which inputs, how its geometry and output shape follow. */
export interface ConvKernelSpec {
  kernelName: string;
  /** Names of the two float32 inputs, in the addon's argument order. */
  inputs: [string, string];
  depthwise: boolean;
  /**
   * Whether the cpu kernel throws without a dilations attribute (the others take 1 for it).
   * Conv2D's and the depthwise backprops' do; Conv2DBackprop* ignore it, DepthwiseConv2dNative defaults it.
   */
  needsDilations: boolean;
  /** [input shape, filter shape] the geometry is computed from. */
  shapes(a: TensorInfo, b: TensorInfo, attrs: NamedAttrMap): [Shape4, Shape4];
  outShape(info: ConvInfo, attrs: NamedAttrMap): number[];
  /** The addon entry: (a, b, out, geometry). */
  entry(addon: NativeAddon): (a: Float32Array, b: Float32Array, out: Float32Array, geom: Int32Array) => void;
}

/**
 * tfjs's convInfo of a conv-family call, or null where the cpu kernel would not compute with these
 * attributes as given (it then serves the call: its result or its error). The depthwise kernels'
 * cpu versions ignore dataFormat (always NHWC); the others convert it and throw when it is missing.
 * Shapes must be 4-D and every size, stride, dilation and pad an integer.
 */
export function convInfoOf(
  x: readonly number[],
  filter: readonly number[],
  attrs: NamedAttrMap,
  depthwise: boolean,
  needsDilations: boolean,
): ConvInfo | null {
  const a = attrs as unknown as ConvAttrs;
  if (!isIntArray(x, 4, 0) || !isIntArray(filter, 4, 0)) return null;
  if (!depthwise && a.dataFormat !== 'NHWC') return null;
  const dilations = a.dilations ?? (needsDilations ? undefined : 1);
  if (!isPair(a.strides) || !isPair(dilations) || !isPadding(a.pad) || !isRounding(a.dimRoundingMode))
    return null;
  // tfjs cpu's depthwise forward refuses strides > 1 together with dilations > 1.
  if (depthwise && !backend_util.eitherStridesOrDilationsAreOne(a.strides, dilations!)) return null;
  return backend_util.computeConv2DInfo(
    x as Shape4,
    filter as Shape4,
    a.strides,
    dilations!,
    a.pad,
    a.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}

/** A native conv-family kernel built from its spec (Conv2D, the backprops, depthwise). */
export function convKernel(spec: ConvKernelSpec): NativeKernel {
  return {
    kernelName: spec.kernelName,
    run({ inputs, attrs, backend, addon }) {
      const a = inputs[spec.inputs[0]];
      const b = inputs[spec.inputs[1]];
      if (a === undefined || b === undefined || !allF32(a, b)) return null;
      if (a.shape.length !== 4 || b.shape.length !== 4) return null;
      const [xShape, fShape] = spec.shapes(a, b, attrs);
      const info = convInfoOf(xShape, fShape, attrs, spec.depthwise, spec.needsDilations);
      const geom = info === null ? null : convGeometry(info, spec.depthwise);
      if (info === null || geom === null) return null;
      // Inputs whose shapes differ from what the geometry implies (tfjs's cpu kernels index dy by
      // its own shape and accept e.g. conv2dTranspose with an outputShape that does not produce
      // dy): the JS kernel serves the call, so native never differs from cpu.
      const expect: Record<string, readonly number[]> = {
        x: xShape,
        filter: fShape,
        dy: [info.batchSize, info.outHeight, info.outWidth, info.outChannels],
      };
      const same = (t: TensorInfo, want: readonly number[] | undefined) =>
        want !== undefined && t.shape.length === want.length && t.shape.every((d, i) => d === want[i]);
      if (!same(a, expect[spec.inputs[0]]) || !same(b, expect[spec.inputs[1]])) return null;
      const out = backend.makeOutputF32(spec.outShape(info, attrs));
      spec.entry(addon).call(addon, backend.f32(a)!, backend.f32(b)!, out.values, geom);
      return out.info;
    },
  };
}
