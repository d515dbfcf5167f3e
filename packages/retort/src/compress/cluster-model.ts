/**
 * Weight sharing for a whole model and the fine-tuning of its codebooks (Han, Mao & Dally, "Deep
 * Compression: Compressing Deep Neural Networks with Pruning, Trained Quantization and Huffman
 * Coding", ICLR 2016, section 3; the k-means itself is cluster.ts). Every Conv2D, DepthwiseConv2D
 * and Dense kernel gets its own codebook of k centroids (weights are not shared across layers);
 * biases and batch-norm parameters stay float.
 *
 * Fine-tuning keeps each weight's cluster index fixed and trains the centroids. Han et al. give the
 * centroid gradient dL/dC_k = sum over the weights i in cluster k of dL/dW_i (centroidGradients).
 * The trainer's optimizer, though, updates every weight by its own gradient, so the wrapper works
 * on those updates instead: with every kernel holding its decoded codebook before the step (W_i =
 * C_{I_i}) and u_i = W_i' - W_i the optimizer's update of weight i,
 *   'sum'  (default): C_k' = C_k + sum_{i in k} u_i;
 *   'mean':           C_k' = C_k + (1 / n_k) sum_{i in k} u_i   (n_k: the cluster's size),
 * and the kernel is rewritten from the new codebook, W_i' := C'_{I_i}, so it keeps at most k values.
 * For any optimizer whose update is linear in the gradient (SGD, with momentum, Nesterov, and L2
 * weight decay added to the gradient) 'sum' is exactly that optimizer run on the centroids with
 * Han et al.'s gradient (the per-weight momentum buffers sum to the centroid's); e.g. plain SGD
 * gives C_k' = C_k - lr sum_{i in k} g_i. Its step grows with the cluster size, so the learning
 * rate must suit the largest clusters. 'mean' is the average step of the cluster's weights (SGD on
 * the centroids with the gradient divided by n_k): a step no larger than one weight's, the safer
 * choice with Adam, whose per-weight steps do not add up to an Adam step on the centroid.
 * The codebooks live in the kernels themselves (a centroid is read back from a weight of its
 * cluster), so checkpoints and --resume need nothing extra.
 *
 * After pruning (Deep Compression's order: prune, then share), `keepZeros` clusters only the
 * non-zero weights into k - 1 centroids and gives the zeros a centroid of their own, fixed at 0
 * (`frozen`), so fine-tuning keeps the sparsity without a mask.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { StepInput, TrainTask } from '../train/trainer.js';
import { type Clustering, decode, kmeans } from './cluster.js';

/** The codebook of one layer's kernel (indices in the kernel's row-major order). */
export interface LayerClustering {
  layer: string;
  /** The kernel's shape: [kh, kw, Cin, Cout], [kh, kw, C, m] (depthwise) or [in, out]. */
  shape: number[];
  clustering: Clustering;
  /** Centroids that do not train (keepZeros: the pruned weights' 0). */
  frozen?: number[];
}

export interface ClusterModelOptions {
  /** Centroids per kernel (k); 16 is 4-bit indices. */
  clusters: number;
  /** Seed of k-means++ (default 0; the same for every layer). */
  seed?: number;
  /** Lloyd iterations at most (default 50, as cluster.ts). */
  iterations?: number;
  /** Layers whose kernels stay float. */
  skip?: readonly string[];
  /** Zero weights keep a frozen centroid 0; the rest share k - 1 centroids (see the header). */
  keepZeros?: boolean;
}

const CLUSTERABLE = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

/** The clusterable kernel variables of `model` by layer, in layer order. */
function kernels(model: tfl.LayersModel): { layer: string; kernel: tf.Variable }[] {
  const out: { layer: string; kernel: tf.Variable }[] = [];
  for (const layer of model.layers) {
    if (!CLUSTERABLE.has(layer.getClassName())) continue;
    const w = layer.weights.find((v) => /kernel/.test(v.originalName));
    if (w) out.push({ layer: layer.name, kernel: w.read() as tf.Variable });
  }
  return out;
}

/**
 * Clusters every Conv2D, DepthwiseConv2D and Dense kernel of `model` (except `skip`'s) into
 * `clusters` shared values, writes the decoded kernels into the model (in place) and returns the
 * codebooks, in layer order. A kernel with no more weights than `clusters` (ResNet-8's 144-weight
 * stem at k = 256) is left float and gets no codebook: it already holds at most k values, and its
 * codebook would be as large as the kernel itself.
 */
export function clusterModel(model: tfl.LayersModel, opts: ClusterModelOptions): LayerClustering[] {
  const all = kernels(model);
  const skip = new Set(opts.skip ?? []);
  for (const name of skip)
    if (!all.some((k) => k.layer === name))
      throw new Error(
        `cluster: skip names '${name}', which is no Conv2D, DepthwiseConv2D or Dense layer of model '${model.name}' (those: ${all.map((k) => k.layer).join(', ')})`,
      );
  const chosen = all.filter((k) => !skip.has(k.layer) && k.kernel.size > opts.clusters);
  if (chosen.length === 0)
    throw new Error(
      `cluster: model '${model.name}' has no Conv2D, DepthwiseConv2D or Dense kernel to cluster` +
        (all.some((k) => !skip.has(k.layer))
          ? ` into ${opts.clusters} clusters (kernels with no more weights than that stay float: ${all
              .filter((k) => !skip.has(k.layer))
              .map((k) => `${k.layer} ${k.kernel.size}`)
              .join(', ')})`
          : ''),
    );
  return chosen.map(({ layer, kernel }) => {
    const w = kernel.dataSync() as Float32Array;
    const zeros = opts.keepZeros ? w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0) : 0;
    let clustering: Clustering;
    try {
      if (zeros === 0) {
        clustering = kmeans(w, opts.clusters, {
          seed: opts.seed ?? 0,
          ...(opts.iterations === undefined ? {} : { iterations: opts.iterations }),
        });
      } else {
        if (opts.clusters < 2) throw new Error(`keepZeros needs at least 2 clusters, got ${opts.clusters}`);
        const nz = w.filter((v) => v !== 0);
        const c = kmeans(nz, opts.clusters - 1, {
          seed: opts.seed ?? 0,
          ...(opts.iterations === undefined ? {} : { iterations: opts.iterations }),
        });
        const indices = new Uint16Array(w.length);
        let j = 0;
        for (let i = 0; i < w.length; i++) indices[i] = w[i] === 0 ? 0 : 1 + c.indices[j++]!;
        clustering = { centroids: Float32Array.from([0, ...c.centroids]), indices, inertia: c.inertia };
      }
    } catch (e) {
      throw new Error(`cluster: layer '${layer}': ${(e as Error).message.replace(/^cluster: /, '')}`);
    }
    const decoded = tf.tensor(decode(clustering), kernel.shape);
    kernel.assign(decoded);
    decoded.dispose();
    return { layer, shape: [...kernel.shape], clustering, ...(zeros > 0 ? { frozen: [0] } : {}) };
  });
}

export interface ClusterFinetuneOptions {
  /** How the weights' updates move their centroid (see the file header). Default 'sum'. */
  reduce?: 'sum' | 'mean';
}

export interface ClusterTask extends TrainTask {
  /** The current codebooks: centroids read from the kernels, indices and inertia as clustered. */
  clusterings(): LayerClustering[];
  /** Frees the index tensors. */
  dispose(): void;
}

interface Bound {
  lc: LayerClustering;
  kernel: tf.Variable;
  /** int32 [n]: cluster of every weight. */
  idx: tf.Tensor1D;
  /** int32 [k]: one weight of each cluster (0 for an empty cluster). */
  reps: tf.Tensor1D;
  /** Whether cluster j has weights; an empty one keeps its centroid. */
  used: boolean[];
  /** float32 [k]: cluster sizes (at least 1), the 'mean' divisor. */
  sizes: tf.Tensor1D;
  /** float32 [k]: 0 for frozen centroids, 1 for the others. */
  trains: tf.Tensor1D;
}

function bind(model: tfl.LayersModel, lc: LayerClustering): Bound {
  const found = kernels(model).find((k) => k.layer === lc.layer);
  if (found === undefined)
    throw new Error(
      `cluster finetune: model '${model.name}' has no Conv2D, DepthwiseConv2D or Dense layer '${lc.layer}'`,
    );
  const { kernel } = found;
  const c = lc.clustering;
  if (kernel.shape.join(',') !== lc.shape.join(',') || c.indices.length !== kernel.size)
    throw new Error(
      `cluster finetune: layer '${lc.layer}': kernel [${kernel.shape}] does not match its codebook for [${lc.shape}] (${c.indices.length} indices)`,
    );
  const k = c.centroids.length;
  const w = kernel.dataSync();
  const rep = new Int32Array(k).fill(-1);
  const size = new Float32Array(k);
  for (let i = 0; i < c.indices.length; i++) {
    const j = c.indices[i]!;
    if (j >= k) throw new Error(`cluster finetune: layer '${lc.layer}': index ${j} at weight ${i}, k = ${k}`);
    if (w[i] !== c.centroids[j])
      throw new Error(
        `cluster finetune: layer '${lc.layer}': weight ${i} is ${w[i]}, its centroid ${c.centroids[j]}: the kernel is not its decoded codebook (cluster it with clusterModel first)`,
      );
    if (rep[j] === -1) rep[j] = i;
    size[j]! += 1;
  }
  return {
    lc,
    kernel,
    idx: tf.tensor1d(Int32Array.from(c.indices), 'int32'),
    reps: tf.tensor1d(
      rep.map((r) => Math.max(r, 0)),
      'int32',
    ),
    used: Array.from(rep, (r) => r >= 0),
    sizes: tf.tensor1d(size.map((s) => Math.max(s, 1))),
    trains: tf.tensor1d(Float32Array.from({ length: k }, (_, j) => (lc.frozen?.includes(j) ? 0 : 1))),
  };
}

/**
 * Wraps a trainer task so that the optimizer trains the centroids of `clusterings` (from
 * clusterModel on `model`, whose kernels must still hold the decoded codebooks) instead of free
 * weights: after every step each centroid moves by the sum ('sum') or mean ('mean') of its weights'
 * updates and the kernels are rewritten from the codebooks. Other weights train normally.
 */
export function withClusterFinetune(
  task: TrainTask,
  model: tfl.LayersModel,
  clusterings: readonly LayerClustering[],
  opts: ClusterFinetuneOptions = {},
): ClusterTask {
  const reduce = opts.reduce ?? 'sum';
  if (reduce !== 'sum' && reduce !== 'mean')
    throw new Error(`cluster finetune: reduce must be 'sum' or 'mean', got '${String(reduce)}'`);
  const seen = new Set<string>();
  for (const lc of clusterings) {
    if (seen.has(lc.layer)) throw new Error(`cluster finetune: layer '${lc.layer}' has two codebooks`);
    seen.add(lc.layer);
  }
  const bound = clusterings.map((lc) => bind(model, lc));
  /** Centroids [k] of every layer before the step (read in prepare). */
  let before: tf.Tensor1D[] = [];
  return {
    ...task,
    prepare(input: StepInput): void | Promise<void> {
      tf.dispose(before);
      before = bound.map((b) => tf.keep(tf.tidy(() => tf.gather(tf.reshape(b.kernel, [-1]), b.reps))));
      return task.prepare?.(input);
    },
    release() {
      task.release?.();
      if (before.length === 0) return;
      bound.forEach((b, l) => {
        const c = before[l]!;
        const next = tf.tidy(() => {
          const u = tf.sub(tf.reshape(b.kernel, [-1]), tf.gather(c, b.idx));
          let step = tf.unsortedSegmentSum(u, b.idx, b.used.length);
          if (reduce === 'mean') step = tf.div(step, b.sizes);
          step = tf.mul(step, b.trains);
          return tf.reshape(tf.gather(tf.add(c, step), b.idx), b.kernel.shape);
        });
        b.kernel.assign(next);
        next.dispose();
      });
      tf.dispose(before);
      before = [];
    },
    clusterings() {
      return bound.map((b) => {
        const now = tf.tidy(() => tf.gather(tf.reshape(b.kernel, [-1]), b.reps)).dataSync();
        const old = b.lc.clustering;
        const centroids = Float32Array.from(old.centroids, (v, j) => (b.used[j] ? now[j]! : v));
        return { ...b.lc, shape: [...b.lc.shape], clustering: { ...old, centroids } };
      });
    },
    dispose() {
      tf.dispose([...before, ...bound.flatMap((b) => [b.idx, b.reps, b.sizes, b.trains])]);
      before = [];
    },
  };
}
