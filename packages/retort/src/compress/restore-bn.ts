/**
 * BatchNorm put back after the convolutions of a model whose BatchNorms were folded away, as
 * torch.onnx.export does in eval mode: the imported network then has none, and fine-tuning it is
 * unstable (a PyTorch ResNet-20 imported that way gave a non-finite loss within 10 SGD steps at lr
 * 0.01, momentum 0.9; BatchNorm's effect on the conditioning of training is the subject of Ioffe &
 * Szegedy, "Batch Normalization", ICML 2015, and Santurkar et al., NeurIPS 2018).
 *
 * Each restored layer starts as the identity in inference mode: with the per-channel mean m and
 * variance v of the conv's output on calibration batches, gamma = sqrt(v + eps), beta = m, running
 * mean m and running variance v give gamma * (x - m) / sqrt(v + eps) + beta = x. In training mode
 * it normalizes with the batch's statistics, which are close to m and v, so the first steps see
 * the original function, and the scale of every channel becomes a parameter of its own again.
 * The exports fold these layers into the convs as they fold any BatchNorm.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fusedBatchNorm } from '../models/batchnorm.js';
import { cloneLayer, consumersOf, rebuildModel, transferWeights } from './graph.js';

const EPS = 1e-5;
const CONVS = new Set(['Conv2D', 'DepthwiseConv2D']);

/**
 * `model` rebuilt with a BatchNorm after every Conv2D / DepthwiseConv2D that is not already
 * followed by one (names `<conv>.bn`), set from `batches` ([N, H, W, C], the model's inputs) to be
 * the identity in inference mode. Returns the new model and the convs that got one.
 */
export function restoreBatchNorms(
  model: tfl.LayersModel,
  batches: readonly tf.Tensor[],
): { model: tfl.LayersModel; restored: string[] } {
  const convs = model.layers.filter((l) => {
    if (!CONVS.has(l.getClassName())) return false;
    const next = consumersOf(l);
    return !(next.length === 1 && next[0]!.getClassName() === 'BatchNormalization');
  });
  if (convs.length === 0) return { model, restored: [] };
  if (batches.length === 0) throw new Error('restoreBatchNorms: no calibration batches');
  // Per-channel sums over every batch of each conv's output, in float64.
  const probe = tfl.model({
    inputs: model.inputs,
    outputs: convs.map((l) => l.output as tfl.SymbolicTensor),
  });
  const sums = convs.map((l) => {
    const c = (l.output as tfl.SymbolicTensor).shape.at(-1) as number;
    return { s: new Float64Array(c), q: new Float64Array(c), n: 0 };
  });
  for (const x of batches) {
    const outs = probe.predict(x) as tf.Tensor | tf.Tensor[];
    const list = Array.isArray(outs) ? outs : [outs];
    for (const [i, y] of list.entries()) {
      const acc = sums[i]!;
      const c = acc.s.length;
      const v = y.dataSync();
      for (let j = 0; j < v.length; j++) {
        const k = j % c;
        acc.s[k]! += v[j]!;
        acc.q[k]! += v[j]! * v[j]!;
      }
      acc.n += v.length / c;
    }
    tf.dispose(list);
  }
  const names = new Set(convs.map((l) => l.name));
  const bns = new Map<string, tfl.layers.Layer>();
  const out = rebuildModel(model, (layer) => {
    if (!names.has(layer.name)) return undefined;
    const bn = fusedBatchNorm({ name: `${layer.name}.bn`, axis: -1, momentum: 0.9, epsilon: EPS });
    bns.set(layer.name, bn);
    return { kind: 'replace', layers: [cloneLayer(layer), bn] };
  });
  const given = new Map<string, tf.Tensor[]>();
  for (const [i, l] of convs.entries()) {
    const { s, q, n } = sums[i]!;
    const mean = Float32Array.from(s, (v) => v / n);
    const variance = Float32Array.from(q, (v, k) => Math.max(0, v / n - mean[k]! * mean[k]!));
    const gamma = Float32Array.from(variance, (v) => Math.sqrt(v + EPS));
    given.set(bns.get(l.name)!.name, [
      tf.tensor1d(gamma),
      tf.tensor1d(mean),
      tf.tensor1d(mean),
      tf.tensor1d(variance),
    ]);
  }
  transferWeights(model, out, given);
  tf.dispose([...given.values()].flat());
  return { model: out, restored: convs.map((l) => l.name) };
}
