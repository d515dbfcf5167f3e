/**
 * Unstructured magnitude pruning (Han et al., "Learning both Weights and Connections for Efficient
 * Neural Networks", NeurIPS 2015): the smallest-|w| kernel weights are set to zero and kept at zero
 * by a mask re-applied after every optimizer step. Only kernels of Conv2D, DepthwiseConv2D and
 * Dense layers are pruned (biases and batch-norm parameters are few and sensitive), either with one
 * threshold per layer ('layer': every layer reaches the target sparsity) or one threshold over all
 * pruned weights ('global': layers with many small weights lose more).
 * Schedules: one-shot, constant, and the polynomial schedule of Zhu and Gupta, "To prune, or not to
 * prune", 2017 (AGP): s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3 for t0 <= t <= t0 + n dt.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

export type PruneScope = 'layer' | 'global';

const PRUNABLE = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

/** The prunable kernel variables of a model, by layer name. */
export function prunableKernels(model: tfl.LayersModel): { layer: string; kernel: tf.Variable }[] {
  const out: { layer: string; kernel: tf.Variable }[] = [];
  for (const layer of model.layers) {
    if (!PRUNABLE.has(layer.getClassName())) continue;
    const w = layer.weights.find((v) => /kernel/.test(v.originalName));
    if (w) out.push({ layer: layer.name, kernel: w.read() as tf.Variable });
  }
  if (out.length === 0)
    throw new Error(`prune: model '${model.name}' has no Conv2D, DepthwiseConv2D or Dense kernels`);
  return out;
}

/** The k-th smallest |value| (0-based) over the given arrays; -1 when k < 0. */
function kthAbs(arrays: readonly Float32Array[], k: number): number {
  if (k < 0) return -1;
  const total = arrays.reduce((a, x) => a + x.length, 0);
  const all = new Float32Array(total);
  let at = 0;
  for (const a of arrays) for (const v of a) all[at++] = Math.abs(v);
  all.sort();
  return all[Math.min(k, total - 1)]!;
}

/**
 * Binary masks (1 keep, 0 prune) for `sparsity` in [0, 1) of the kernel weights. Exactly
 * floor(sparsity * n) weights are pruned per layer ('layer') or overall ('global'); ties at the
 * threshold are broken by position so the count is exact.
 */
export function magnitudeMasks(
  kernels: readonly { layer: string; kernel: tf.Tensor }[],
  sparsity: number,
  scope: PruneScope,
): Map<string, Float32Array> {
  if (!(sparsity >= 0 && sparsity < 1)) throw new Error(`prune: sparsity must be in [0, 1), got ${sparsity}`);
  const values = kernels.map((k) => k.kernel.dataSync() as Float32Array);
  const masks = new Map<string, Float32Array>();
  const maskFor = (groups: number[], count: number) => {
    // Prune the `count` smallest |w| over the weights of `groups`, ties by (group, position).
    const t = kthAbs(
      groups.map((g) => values[g]!),
      count - 1,
    );
    let below = 0;
    for (const g of groups) for (const v of values[g]!) if (Math.abs(v) < t) below++;
    let tiesLeft = count - below;
    for (const g of groups) {
      const v = values[g]!;
      const m = new Float32Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const a = Math.abs(v[i]!);
        if (count > 0 && (a < t || (a === t && tiesLeft-- > 0))) m[i] = 0;
        else m[i] = 1;
      }
      masks.set(kernels[g]!.layer, m);
    }
  };
  if (scope === 'layer') {
    for (const [g, v] of values.entries()) maskFor([g], Math.floor(sparsity * v.length));
  } else {
    const total = values.reduce((a, v) => a + v.length, 0);
    maskFor(
      values.map((_, g) => g),
      Math.floor(sparsity * total),
    );
  }
  return masks;
}

/** Masks bound to a model's kernels: apply() after every optimizer step keeps pruned weights at 0. */
export class MaskSet {
  private constructor(
    private readonly kernels: { layer: string; kernel: tf.Variable }[],
    private masks: Map<string, tf.Tensor>,
  ) {}

  /** Prunes `model` to `sparsity` now and returns the masks that keep it so. */
  static prune(model: tfl.LayersModel, sparsity: number, scope: PruneScope): MaskSet {
    const kernels = prunableKernels(model);
    const set = new MaskSet(kernels, new Map());
    set.update(sparsity, scope);
    return set;
  }

  /** Recomputes the masks for a new target (gradual pruning) from the current weights, and applies them. */
  update(sparsity: number, scope: PruneScope): void {
    const fresh = magnitudeMasks(this.kernels, sparsity, scope);
    tf.dispose([...this.masks.values()]);
    this.masks = new Map(
      this.kernels.map(({ layer, kernel }) => [layer, tf.tensor(fresh.get(layer)!, kernel.shape)]),
    );
    this.apply();
  }

  /** Multiplies every kernel by its mask (call after each optimizer step). */
  apply(): void {
    for (const { layer, kernel } of this.kernels) {
      const m = this.masks.get(layer)!;
      const v = tf.mul(kernel, m);
      kernel.assign(v);
      v.dispose();
    }
  }

  /** Fraction of zero mask entries over all masked weights. */
  sparsity(): number {
    let zeros = 0;
    let n = 0;
    for (const m of this.masks.values()) {
      const d = m.dataSync();
      n += d.length;
      for (const v of d) if (v === 0) zeros++;
    }
    return zeros / n;
  }

  /** Masks by layer name (for checkpoints: save these and restore with fromMasks). */
  state(): Record<string, Float32Array> {
    return Object.fromEntries([...this.masks].map(([k, m]) => [k, m.dataSync() as Float32Array]));
  }

  static fromMasks(model: tfl.LayersModel, saved: Record<string, Float32Array>): MaskSet {
    const kernels = prunableKernels(model);
    const masks = new Map<string, tf.Tensor>();
    for (const { layer, kernel } of kernels) {
      const m = saved[layer];
      if (m === undefined || m.length !== kernel.size)
        throw new Error(`prune: saved masks lack layer '${layer}' or have the wrong size`);
      masks.set(layer, tf.tensor(m, kernel.shape));
    }
    return new MaskSet(kernels, masks);
  }

  dispose(): void {
    tf.dispose([...this.masks.values()]);
  }
}

export type Schedule =
  | { kind: 'one-shot'; sparsity: number }
  | { kind: 'constant'; sparsity: number; start: number }
  | { kind: 'agp'; initial: number; final: number; start: number; steps: number; every: number };

/** Target sparsity at step t under a schedule. */
export function sparsityAt(s: Schedule, t: number): number {
  switch (s.kind) {
    case 'one-shot':
      return s.sparsity;
    case 'constant':
      return t >= s.start ? s.sparsity : 0;
    case 'agp': {
      if (t < s.start) return 0;
      const span = s.steps * s.every;
      // Pruning happens every `every` steps: hold the value between updates.
      const tq = Math.min(span, Math.floor((t - s.start) / s.every) * s.every);
      return s.final + (s.initial - s.final) * (1 - tq / span) ** 3;
    }
  }
}
