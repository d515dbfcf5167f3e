/**
 * Batch-norm folding for inference (Jacob et al., "Quantization and Training of Neural Networks for
 * Efficient Integer-Arithmetic-Only Inference", CVPR 2018, section 3.2): a BN after a conv,
 * y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta, is the same conv with
 * W' = W * s (s = gamma / sqrt(var + eps), per output channel) and b' = (b - mean) * s + beta.
 * Quantization then sees one conv with a bias instead of a conv and an elementwise op.
 * Folding holds for inference only (running statistics); a folded model trains differently.
 * Test code: no product path folds a tfjs model; the int8 ONNX exports fold batch norms as they
 * write the graph (src/export/onnx/ops-conv.ts, ptq-graph.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { consumersOf, isModelOutput, rebuildModel, transferWeights } from '../../src/compress/graph.js';

export interface BnParams {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  epsilon: number;
}

/**
 * How a kernel's axes hold output channels: 'last' for HWIO conv and [in, out] dense kernels,
 * 'depthwise' for [kh, kw, C, m] kernels (output channel c * m + j).
 */
export type KernelLayout = 'last' | 'depthwise';

/** Folds BN into a kernel and its bias (null: none); returns new tensors. */
export function foldBn(
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  bn: BnParams,
  layout: KernelLayout = 'last',
): { kernel: tf.Tensor; bias: tf.Tensor } {
  const s = kernel.shape;
  const c = layout === 'depthwise' ? s[s.length - 2]! * s[s.length - 1]! : s[s.length - 1]!;
  if (bn.gamma.length !== c)
    throw new Error(
      `foldBn: the batch norm has ${bn.gamma.length} channels, the kernel [${s}] has ${c} outputs`,
    );
  const k = new Float32Array(c);
  const b = new Float32Array(c);
  const b0 = bias ? bias.dataSync() : new Float32Array(c);
  for (let j = 0; j < c; j++) {
    // float64 here; one rounding when stored.
    const f = bn.gamma[j]! / Math.sqrt(bn.variance[j]! + bn.epsilon);
    k[j] = f;
    b[j] = (b0[j]! - bn.mean[j]!) * f + bn.beta[j]!;
  }
  const scale =
    layout === 'depthwise' ? tf.tensor2d(k, [s[s.length - 2]!, s[s.length - 1]!]) : tf.tensor1d(k);
  const folded = tf.mul(kernel, scale);
  scale.dispose();
  return { kernel: folded, bias: tf.tensor1d(b) };
}

/** The parameters of a tfjs BatchNormalization layer (gamma 1 / beta 0 where it has none). */
export function bnParams(layer: tfl.layers.Layer): BnParams {
  const byName = (n: string) =>
    layer.weights
      .find((w) => w.originalName.endsWith(n))
      ?.read()
      .dataSync() as Float32Array | undefined;
  const mean = byName('moving_mean');
  const variance = byName('moving_variance');
  if (!mean || !variance) throw new Error(`foldBn: layer '${layer.name}' has no moving mean/variance`);
  return {
    gamma: byName('gamma') ?? new Float32Array(mean.length).fill(1),
    beta: byName('beta') ?? new Float32Array(mean.length),
    mean,
    variance,
    epsilon: layer.getConfig()['epsilon'] as number,
  };
}

const FOLDABLE: Record<string, KernelLayout> = {
  Conv2D: 'last',
  DepthwiseConv2D: 'depthwise',
  Dense: 'last',
};

/**
 * The batch norms that can be folded, by the layer they fold into: BNs over the last axis whose
 * input is a Conv2D, DepthwiseConv2D or Dense with a linear activation and no other consumer
 * (the rule export/onnx.ts folds by, extended to Dense).
 */
export function foldableBns(model: tfl.LayersModel): Map<string, tfl.layers.Layer> {
  const out = new Map<string, tfl.layers.Layer>();
  for (const bn of model.layers) {
    if (bn.getClassName() !== 'BatchNormalization' || bn.inboundNodes.length !== 1) continue;
    const rank = (bn.input as tfl.SymbolicTensor).shape.length;
    const axis = bn.getConfig()['axis'] as number;
    if (axis !== -1 && axis !== rank - 1) continue;
    const src = bn.inboundNodes[0]!.inboundLayers[0]!;
    if (
      FOLDABLE[src.getClassName()] !== undefined &&
      consumersOf(src).length === 1 &&
      !isModelOutput(model, src) &&
      (src.getConfig()['activation'] ?? 'linear') === 'linear'
    )
      out.set(src.name, bn);
  }
  return out;
}

/**
 * A copy of `model` for inference with every foldable batch norm folded into its conv/dense (which
 * gains a bias); the BN layers are gone, so their consumers read the conv's output.
 */
export function foldBatchNorms(model: tfl.LayersModel): tfl.LayersModel {
  const folds = foldableBns(model);
  const bnNames = new Set([...folds.values()].map((l) => l.name));
  const folded = rebuildModel(model, (layer) => {
    if (bnNames.has(layer.name)) return { kind: 'remove' };
    if (folds.has(layer.name)) return { kind: 'clone', config: { useBias: true } };
    return undefined;
  });
  tf.tidy(() => {
    const given = new Map<string, tf.Tensor[]>();
    for (const [name, bn] of folds) {
      const layer = model.getLayer(name);
      const ws = layer.getWeights();
      const f = foldBn(ws[0]!, ws[1] ?? null, bnParams(bn), FOLDABLE[layer.getClassName()]);
      given.set(name, [f.kernel, f.bias]);
    }
    transferWeights(model, folded, given);
  });
  return folded;
}
