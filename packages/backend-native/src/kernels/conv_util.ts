/**
 * Geometry of a 2-D convolution in the 17-int layout native/conv_common.h reads:
 * [N, H, W, C, KH, KW, OC|M, OH, OW, strideH, strideW, dilationH, dilationW, padT, padL, padB, padR].
 */
import { backend_util, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../binding.js';
import { allF32, type NativeKernel } from './kernel.js';

type ConvInfo = backend_util.Conv2DInfo;

/**
 * Packs tfjs's convInfo, or returns null when oneDNN cannot express it (channels-first data, or a
 * bottom/right padding that would have to be negative).
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
  return Int32Array.from([
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

/** The shape of one conv-family kernel: which inputs, how its geometry and output shape follow. */
export interface ConvKernelSpec {
  kernelName: string;
  /** Names of the two float32 inputs, in the addon's argument order. */
  inputs: [string, string];
  depthwise: boolean;
  /** [input shape, filter shape] the geometry is computed from. */
  shapes(a: TensorInfo, b: TensorInfo, attrs: NamedAttrMap): [Shape4, Shape4];
  outShape(info: ConvInfo, attrs: NamedAttrMap): number[];
  /** The addon entry: (a, b, out, geometry). */
  entry(addon: NativeAddon): (a: Float32Array, b: Float32Array, out: Float32Array, geom: Int32Array) => void;
}

/** Geometry of a conv-family call from its attributes, or null when oneDNN cannot express it. */
export function convInfoOf(x: Shape4, filter: Shape4, attrs: NamedAttrMap, depthwise: boolean): ConvInfo {
  const a = attrs as unknown as ConvAttrs;
  return backend_util.computeConv2DInfo(
    x,
    filter,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    depthwise,
    a.dataFormat === undefined ? 'channelsLast' : backend_util.convertConv2DDataFormat(a.dataFormat),
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
      const [xShape, fShape] = spec.shapes(a, b, attrs);
      const info = convInfoOf(xShape, fShape, attrs, spec.depthwise);
      const geom = convGeometry(info, spec.depthwise);
      if (geom === null) return null;
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
