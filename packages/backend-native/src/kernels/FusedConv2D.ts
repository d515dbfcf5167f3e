/**
 * FusedConv2D with optional per-channel bias and linear/relu activation, fused in one oneDNN
 * primitive (bias + post-op). tfjs-layers' Conv2D layer runs through this kernel. Other activations,
 * scalar biases and prelu defer to the JS kernel.
 */
import type { FusedConv2DAttrs } from '@tensorflow/tfjs-core';
import { convGeometry, convInfoOf } from './conv_util.js';
import { allF32, type NativeKernel } from './kernel.js';

export const fusedConv2D: NativeKernel = {
  kernelName: 'FusedConv2D',
  run({ inputs, attrs, backend, addon }) {
    const { x, filter, bias, preluActivationWeights } = inputs;
    const a = attrs as unknown as FusedConv2DAttrs;
    if (x === undefined || filter === undefined || !allF32(x, filter, bias)) return null;
    if (preluActivationWeights !== undefined && preluActivationWeights !== null) return null;
    const act = a.activation ?? 'linear';
    if (act !== 'linear' && act !== 'relu') return null;
    // Its cpu version runs cpu's Conv2D, which throws without dilations.
    const info = convInfoOf(x.shape, filter.shape, attrs, false, true);
    const geom = info === null ? null : convGeometry(info, false);
    if (info === null || geom === null) return null;
    let biasValues: Float32Array = new Float32Array(0);
    if (bias !== undefined && bias !== null) {
      if (bias.shape.length !== 1 || bias.shape[0] !== info.outChannels) return null;
      biasValues = backend.f32(bias)!;
    }
    const out = backend.makeOutputF32(info.outShape);
    addon.FusedConv2D(
      backend.f32(x)!,
      backend.f32(filter)!,
      out.values,
      geom,
      biasValues,
      act === 'relu' ? 1 : 0,
    );
    return out.info;
  },
};
