/**
 * Unstructured magnitude pruning (Han et al., "Learning both Weights and Connections for Efficient
 * Neural Networks", NeurIPS 2015): the smallest-|w| kernel weights are set to zero and kept at zero
 * by a mask re-applied after every optimizer step. Only kernels of Conv2D, DepthwiseConv2D and
 * Dense layers are pruned (biases and batch-norm parameters are few and sensitive), either with one
 * threshold per layer ('layer': every layer reaches the target sparsity) or one threshold over all
 * pruned weights ('global': layers with many small weights lose more). Schedules that raise the
 * sparsity over training are in schedule.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { loadCheckpoint, saveCheckpoint } from '../../train/checkpoint.js';
import type { TrainTask } from '../../train/trainer.js';

export type PruneScope = 'layer' | 'global';

const PRUNABLE = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

/**
 * The prunable kernel variables of a model, by layer name, in layer order; `only` restricts them to
 * the named layers (e.g. to leave the first conv and the classifier dense).
 */
export function prunableKernels(
  model: tfl.LayersModel,
  only?: readonly string[],
): { layer: string; kernel: tf.Variable }[] {
  const out: { layer: string; kernel: tf.Variable }[] = [];
  for (const layer of model.layers) {
    if (!PRUNABLE.has(layer.getClassName())) continue;
    const w = layer.weights.find((v) => /kernel/.test(v.originalName));
    if (w) out.push({ layer: layer.name, kernel: w.read() as tf.Variable });
  }
  if (out.length === 0)
    throw new Error(`prune: model '${model.name}' has no Conv2D, DepthwiseConv2D or Dense kernels`);
  if (only === undefined) return out;
  for (const name of only)
    if (!out.some((k) => k.layer === name))
      throw new Error(
        `prune: layer '${name}' of model '${model.name}' has no prunable kernel (prunable: ${out.map((k) => k.layer).join(', ')})`,
      );
  return out.filter((k) => only.includes(k.layer));
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

export interface MaskOptions {
  /** Prune only these layers (default: every Conv2D, DepthwiseConv2D and Dense kernel). */
  layers?: readonly string[];
}

/**
 * Masks bound to a model's kernels. The optimizer step updates pruned weights too (their gradient
 * is not zero), so apply() must run after every step: it multiplies each kernel by its mask.
 */
export class MaskSet {
  private constructor(
    private readonly kernels: { layer: string; kernel: tf.Variable }[],
    private masks: Map<string, tf.Tensor>,
    private target: { sparsity: number; scope: PruneScope },
  ) {}

  /** Prunes `model` to `sparsity` now and returns the masks that keep it so. */
  static prune(model: tfl.LayersModel, sparsity: number, scope: PruneScope, opts: MaskOptions = {}): MaskSet {
    const set = new MaskSet(prunableKernels(model, opts.layers), new Map(), { sparsity, scope });
    set.update(sparsity, scope);
    return set;
  }

  /** Recomputes the masks for a new target (gradual pruning) from the current weights, and applies them. */
  update(sparsity: number, scope: PruneScope = this.target.scope): void {
    const fresh = magnitudeMasks(this.kernels, sparsity, scope);
    tf.dispose([...this.masks.values()]);
    this.masks = new Map(
      this.kernels.map(({ layer, kernel }) => [layer, tf.tensor(fresh.get(layer)!, kernel.shape)]),
    );
    this.target = { sparsity, scope };
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

  /**
   * Replaces the mask of `layer` with `mask` (0/1, one entry per kernel weight) without applying
   * it: for sparse training that moves connections (RigL), where the mask comes from weights and
   * gradients rather than from a magnitude target. The target (`current`) is left as it was.
   */
  setMask(layer: string, mask: Float32Array): void {
    const k = this.kernels.find((x) => x.layer === layer);
    if (k === undefined)
      throw new Error(`prune: no mask for layer '${layer}' (masked: ${this.layers.join(', ')})`);
    if (mask.length !== k.kernel.size)
      throw new Error(
        `prune: setMask: layer '${layer}' got ${mask.length} mask entries, its kernel [${k.kernel.shape}] has ${k.kernel.size}`,
      );
    if (mask.some((v) => v !== 0 && v !== 1))
      throw new Error(`prune: setMask: the mask of layer '${layer}' holds values other than 0 and 1`);
    tf.dispose(this.masks.get(layer));
    this.masks.set(layer, tf.tensor(mask, k.kernel.shape));
  }

  /** The target of the last update. */
  get current(): { sparsity: number; scope: PruneScope } {
    return { ...this.target };
  }

  /** Names of the masked layers. */
  get layers(): string[] {
    return this.kernels.map((k) => k.layer);
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

  /** Masks by layer name (copies). */
  state(): Record<string, Float32Array> {
    return Object.fromEntries([...this.masks].map(([k, m]) => [k, m.dataSync().slice() as Float32Array]));
  }

  /** Binds saved masks (state()) to `model`'s kernels of the same layer names, and applies them. */
  static fromMasks(
    model: tfl.LayersModel,
    saved: Record<string, Float32Array>,
    target: { sparsity: number; scope: PruneScope } = { sparsity: Number.NaN, scope: 'layer' },
    where = 'saved masks',
  ): MaskSet {
    const names = Object.keys(saved);
    if (names.length === 0) throw new Error(`prune: ${where}: no masks`);
    const kernels = prunableKernels(model, names);
    const masks = new Map<string, tf.Tensor>();
    for (const { layer, kernel } of kernels) {
      const m = saved[layer]!;
      if (m.length !== kernel.size)
        throw new Error(
          `prune: ${where}: layer '${layer}' has ${m.length} mask entries, its kernel [${kernel.shape}] has ${kernel.size}`,
        );
      if (m.some((v) => v !== 0 && v !== 1))
        throw new Error(`prune: ${where}: the mask of layer '${layer}' holds values other than 0 and 1`);
      masks.set(layer, tf.tensor(m, kernel.shape));
    }
    const set = new MaskSet(kernels, masks, target);
    set.apply();
    return set;
  }

  /** Writes the masks to `path` atomically (a checkpoint file with one tensor per layer). */
  save(path: string, meta: Record<string, unknown> = {}): void {
    saveCheckpoint(
      path,
      { epoch: 0, globalStep: 0, meta: { ...meta, kind: 'prune-masks', ...this.target } },
      [...this.masks].map(([layer, m]) => ({ name: `mask/${layer}`, tensor: m })),
    );
  }

  /** Reads masks written by save() and binds them to `model` (the same layer names and shapes). */
  static load(model: tfl.LayersModel, path: string): MaskSet {
    const ck = loadCheckpoint(path);
    if (ck.header.meta['kind'] !== 'prune-masks')
      throw new Error(
        `prune: ${path} is a checkpoint but not a mask file (meta.kind '${String(ck.header.meta['kind'])}')`,
      );
    const saved: Record<string, Float32Array> = {};
    for (const [name, v] of ck.values) saved[name.replace(/^mask\//, '')] = v.data;
    const scope = ck.header.meta['scope'] === 'global' ? 'global' : 'layer';
    return MaskSet.fromMasks(model, saved, { sparsity: Number(ck.header.meta['sparsity']), scope }, path);
  }

  dispose(): void {
    tf.dispose([...this.masks.values()]);
  }
}

/**
 * `task` with `masks` re-applied after every optimizer step, after the task's own `release`: the
 * step moves pruned weights too (their gradient is not zero), so every stage that trains a sparse
 * model wraps its task in this. `task` itself when there are no masks.
 */
export function keepingMasks<T extends TrainTask>(task: T, masks: MaskSet | null): T {
  if (masks === null) return task;
  return {
    ...task,
    release: () => {
      task.release?.();
      masks.apply();
    },
  };
}
