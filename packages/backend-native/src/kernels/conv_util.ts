/**
 * Geometry of a 2-D convolution in the 17-int layout native/conv_common.h reads:
 * [N, H, W, C, KH, KW, OC|M, OH, OW, strideH, strideW, dilationH, dilationW, padT, padL, padB, padR].
 */
import type { backend_util } from '@tensorflow/tfjs-core';

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
