/**
 * What a model costs: parameters, bytes on disk under several encodings, and multiply-accumulates
 * per layer, from a tfjs-layers model's configuration and weights (no forward pass).
 *
 * Conventions (those of the usual PyTorch counters, e.g. thop/ptflops, stated so numbers compare):
 * - Conv2D: H_out * W_out * C_out * (k_h * k_w * C_in) MACs (+ H_out * W_out * C_out adds for a bias,
 *   counted as `adds`, not MACs); DepthwiseConv2D: H_out * W_out * C * k_h * k_w (* multiplier);
 *   Dense: in * out MACs (+ out bias adds).
 * - Pooling: one comparison (max) or addition (average) per window element per output, counted as
 *   `ops`, not MACs; global average pooling H * W * C additions.
 * - BatchNormalization, activations and Add/Concatenate: elementwise `ops` (one per output element;
 *   BN counts 2, a scale and a shift), reported separately: they fold away (BN) or are memory-bound.
 * Bytes: fp32 4 B per weight; int8 1 B per weight + per-output-channel fp32 scale and int32 zero
 * point for kernels (biases and BN stay fp32); sparse = a 1-bit mask over all weights + 4 B per
 * non-zero; clustered k = ceil(log2 k) bits per weight + a k-entry fp32 codebook per layer.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

export interface LayerStats {
  name: string;
  className: string;
  /** Output shape without the batch axis. */
  outputShape: number[];
  params: number;
  trainableParams: number;
  /** Multiply-accumulates (conv, depthwise, dense). */
  macs: number;
  /** Other arithmetic: bias adds, pooling, BN, activations, merges. */
  ops: number;
  /** Zero-valued weights among this layer's kernels (sparsity). */
  zeros: number;
  /** Distinct values among the kernel weights (clustering), 0 when the layer has none. */
  distinct: number;
}

export interface ModelStats {
  layers: LayerStats[];
  params: number;
  trainableParams: number;
  macs: number;
  ops: number;
  bytes: { fp32: number; int8: number; sparse: number; clustered: number | null };
}

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

function outShape(layer: tfl.layers.Layer): number[] {
  const s = layer.outputShape as (number | null)[] | (number | null)[][];
  const first = Array.isArray(s[0]) ? (s[0] as (number | null)[]) : (s as (number | null)[]);
  return first.slice(1).map((d) => d ?? 0);
}

function inShape(layer: tfl.layers.Layer): number[] {
  const input = layer.input as tfl.SymbolicTensor | tfl.SymbolicTensor[];
  const first = Array.isArray(input) ? input[0]! : input;
  return first.shape.slice(1).map((d) => d ?? 0);
}

function kernelValues(layer: tfl.layers.Layer): Float32Array[] {
  return layer.weights
    .filter((w) => /kernel/.test(w.originalName))
    .map((w) => (w.read() as tf.Tensor).dataSync() as Float32Array);
}

/** Arithmetic of one layer under the conventions above. */
export function layerCost(layer: tfl.layers.Layer): { macs: number; ops: number } {
  const cfg = layer.getConfig() as Record<string, unknown>;
  const cls = layer.getClassName();
  const out = outShape(layer);
  const n = prod(out);
  const useBias = cfg['useBias'] === true;
  const kernel = (cfg['kernelSize'] ?? cfg['poolSize'] ?? [1, 1]) as number[] | number;
  const [kh, kw] = Array.isArray(kernel) ? (kernel as [number, number]) : [kernel, kernel];
  switch (cls) {
    case 'Conv2D': {
      const cin = inShape(layer).at(-1)!;
      return { macs: n * kh * kw * cin, ops: useBias ? n : 0 };
    }
    case 'DepthwiseConv2D':
      return { macs: n * kh * kw, ops: useBias ? n : 0 };
    case 'Dense': {
      const fin = inShape(layer).at(-1)!;
      return { macs: n * fin, ops: useBias ? n : 0 };
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D':
      return { macs: 0, ops: n * kh * kw };
    case 'GlobalAveragePooling2D':
      return { macs: 0, ops: prod(inShape(layer)) };
    case 'BatchNormalization':
      return { macs: 0, ops: 2 * n };
    case 'Activation':
    case 'ReLU':
    case 'Add':
    case 'Concatenate':
      return { macs: 0, ops: n };
    default:
      return { macs: 0, ops: 0 };
  }
}

/** Per-layer and total cost of a model; `k` sizes the clustered encoding (null: not clustered). */
export function modelStats(model: tfl.LayersModel, clusters: number | null = null): ModelStats {
  const layers: LayerStats[] = [];
  let fp32 = 0;
  let int8 = 0;
  let sparse = 0;
  let clusteredBits = 0;
  for (const layer of model.layers) {
    const { macs, ops } = layerCost(layer);
    const params = layer.countParams();
    const trainableParams = layer.trainableWeights.reduce((a, w) => a + prod(w.shape as number[]), 0);
    const kernels = kernelValues(layer);
    let zeros = 0;
    const distinct = new Set<number>();
    for (const k of kernels)
      for (const v of k) {
        if (v === 0) zeros++;
        distinct.add(v);
      }
    const kernelCount = kernels.reduce((a, k) => a + k.length, 0);
    const other = params - kernelCount;
    const outChannels = kernelCount > 0 ? (outShape(layer).at(-1) ?? 1) : 0;
    fp32 += 4 * params;
    int8 += kernelCount + outChannels * 8 + 4 * other;
    sparse += Math.ceil(params / 8) + 4 * (params - zeros);
    if (clusters !== null && kernelCount > 0)
      clusteredBits += kernelCount * Math.ceil(Math.log2(Math.max(2, clusters))) + clusters * 32 + other * 32;
    else clusteredBits += params * 32;
    layers.push({
      name: layer.name,
      className: layer.getClassName(),
      outputShape: outShape(layer),
      params,
      trainableParams,
      macs,
      ops,
      zeros,
      distinct: kernelCount > 0 ? distinct.size : 0,
    });
  }
  return {
    layers,
    params: layers.reduce((a, l) => a + l.params, 0),
    trainableParams: layers.reduce((a, l) => a + l.trainableParams, 0),
    macs: layers.reduce((a, l) => a + l.macs, 0),
    ops: layers.reduce((a, l) => a + l.ops, 0),
    bytes: { fp32, int8, sparse, clustered: clusters === null ? null : Math.ceil(clusteredBits / 8) },
  };
}

const fmt = (x: number) => x.toLocaleString('en-US');

/** The per-layer table in markdown (layers with no parameters and no arithmetic are skipped). */
export function statsTable(stats: ModelStats, title: string): string {
  const rows = stats.layers
    .filter((l) => l.params > 0 || l.macs > 0)
    .map(
      (l) =>
        `| ${l.name} | ${l.className} | [${l.outputShape.join(', ')}] | ${fmt(l.params)} | ${fmt(l.macs)} | ${l.params ? ((100 * l.zeros) / Math.max(1, l.params)).toFixed(1) : '0.0'}% |`,
    );
  return [
    `### ${title}`,
    '',
    '| layer | class | output | params | MACs | zero weights |',
    '| --- | --- | --- | ---: | ---: | ---: |',
    ...rows,
    `| **total** | | | ${fmt(stats.params)} | ${fmt(stats.macs)} | |`,
    '',
    `Bytes: fp32 ${fmt(stats.bytes.fp32)}, int8 ${fmt(stats.bytes.int8)}, sparse ${fmt(stats.bytes.sparse)}${stats.bytes.clustered === null ? '' : `, clustered ${fmt(stats.bytes.clustered)}`}. Other ops (bias, BN, activations, pooling, merges): ${fmt(stats.ops)}.`,
    '',
  ].join('\n');
}
