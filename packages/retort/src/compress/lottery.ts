/**
 * The mechanics of lottery tickets (Frankle & Carbin, "The Lottery Ticket Hypothesis: Finding
 * Sparse, Trainable Neural Networks", ICLR 2019; rewinding to an early epoch: Frankle, Dziugaite,
 * Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020): the
 * sparsity of each round of iterative magnitude pruning, snapshots of every weight of a model to
 * rewind to, the rewind point read from a checkpoint file, and the random re-initialisation that is
 * the papers' control. The stage that runs the rounds is stages/lottery.ts.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { type Checkpoint, loadCheckpoint } from '../train/checkpoint.js';
import { RetortError } from '../util/errors.js';
import { hash32 } from '../util/rng.js';

/**
 * The fewest rounds that prune `rate` of the surviving weights each and reach `sparsity`:
 * the smallest R with 1 - (1 - rate)^R >= sparsity.
 */
export function roundsFor(rate: number, sparsity: number): number {
  // The tolerance keeps exact powers (rate 0.2, sparsity 0.36: R = 2) from rounding up a round.
  return Math.max(1, Math.ceil(Math.log(1 - sparsity) / Math.log(1 - rate) - 1e-9));
}

/**
 * The sparsity after each round: 1 - (1 - rate)^r for r = 1..rounds, as pruning `rate` of the
 * weights still alive each round gives. With a `target`, the last round stops at it exactly (it
 * prunes less than `rate` when the powers step over the target).
 */
export function roundSparsities(rate: number, rounds: number, target?: number): number[] {
  return Array.from({ length: rounds }, (_, i) =>
    // The target itself, not the power that equals it up to rounding: a mask of floor(s * n) zeros.
    target !== undefined && i === rounds - 1 ? target : Math.min(1 - (1 - rate) ** (i + 1), target ?? 1),
  );
}

/** Every weight of a model (kernels, biases, batch-norm parameters and statistics), in `model.weights` order. */
export type WeightSnapshot = readonly Float32Array[];

/** Copies of all of `model`'s weights. */
export function snapshotWeights(model: tfl.LayersModel): WeightSnapshot {
  return model.weights.map((w) => (w.read().dataSync() as Float32Array).slice());
}

/** Writes a snapshot back into `model` (the same architecture: counts and sizes are checked). */
export function restoreWeights(model: tfl.LayersModel, snap: WeightSnapshot, where = 'snapshot'): void {
  const ws = model.weights;
  if (snap.length !== ws.length)
    throw new Error(`lottery: ${where} holds ${snap.length} weights, model '${model.name}' has ${ws.length}`);
  ws.forEach((w, i) => {
    const shape = w.shape as number[];
    if (snap[i]!.length !== w.read().size)
      throw new Error(
        `lottery: ${where}: weight ${i} has ${snap[i]!.length} values, ${w.name} [${shape}] of model '${model.name}' needs ${w.read().size}`,
      );
    const t = tf.tensor(snap[i]!, shape);
    w.write(t);
    t.dispose();
  });
}

/**
 * The epoch a checkpoint's weights are from: a trainer checkpoint (checkpoints/last.ckpt,
 * previous.ckpt) counts its epochs, best.ckpt says it in meta.epoch; null when the file does not
 * say (model.ckpt, or weights saved by hand).
 */
export function checkpointEpoch(ck: Checkpoint): number | null {
  const e = ck.header.meta['epoch'];
  if (typeof e === 'number') return e;
  return ck.header.epoch > 0 || ck.header.globalStep > 0 ? ck.header.epoch : null;
}

/** Where a rewind goes: the initialisation, or the weights after epoch k of training. */
export type RewindPoint = 'init' | { epoch: number };

const pointText = (p: RewindPoint) => (p === 'init' ? "'init'" : `{ epoch: ${p.epoch} }`);

/**
 * The rewind point `want` read from the checkpoint file `path` (one of saveModelWeights or a
 * trainer checkpoint) as a snapshot for `model`. Refuses, naming the file, when it is missing, is
 * not a weight file, holds weights of another epoch, or (for 'init') a run's final weights.
 */
export function readRewindPoint(model: tfl.LayersModel, path: string, want: RewindPoint): WeightSnapshot {
  const fail = (why: string): never => {
    throw new RetortError(`lottery: rewindFrom ${path} ${why}`, { file: path });
  };
  if (!existsSync(path)) fail(`not found (the weights of rewind ${pointText(want)})`);
  const ck = loadCheckpoint(path);
  const meta = ck.header.meta;
  if (meta['kind'] === 'prune-masks') fail('holds pruning masks, not weights');
  const epoch = checkpointEpoch(ck);
  if (want === 'init') {
    if (typeof meta['experiment'] === 'string')
      fail(`holds the final weights of run '${meta['experiment']}' (its model.ckpt), not an initialisation`);
    if (epoch !== null && epoch > 0) fail(`holds the weights after epoch ${epoch}, not an initialisation`);
  } else if (epoch !== want.epoch)
    fail(
      epoch === null
        ? `does not say which epoch its weights are from (a run's model.ckpt holds its final ones); rewind { epoch: ${want.epoch} } needs a trainer checkpoint (checkpoints/last.ckpt, previous.ckpt) or best.ckpt of that epoch`
        : `holds the weights after epoch ${epoch}, rewind asks for epoch ${want.epoch}`,
    );
  // The model's weights lead a trainer checkpoint (extra trained parts and optimizer state follow).
  const saved = ck.header.tensors.filter((t) => !t.name.startsWith('opt/'));
  const ws = model.weights;
  if (saved.length < ws.length)
    fail(`has ${saved.length} weights, model '${model.name}' needs ${ws.length} (a different architecture?)`);
  return ws.map((w, i) => {
    const e = saved[i]!;
    if (e.shape.join(',') !== w.shape.join(','))
      fail(
        `has weight ${e.name} of shape [${e.shape}] where ${w.name} of model '${model.name}' is [${w.shape}]`,
      );
    return ck.values.get(e.name)!.data;
  });
}

interface Initializer {
  apply(shape: number[], dtype?: tf.DataType): tf.Tensor;
}
type SerializedInit = { className: string; config: Record<string, unknown> };

/**
 * Re-initialises every weight of `model` in place with its layer's own initialisers (the
 * `<name>Initializer` entries of the layer's config: kernels, biases, batch-norm parameters and
 * statistics) drawn with new seeds derived from `seed`, the control of the lottery-ticket papers
 * ("randomly reinitialized"): the same distributions as the original initialisation, other values.
 */
export function reinitializeWeights(model: tfl.LayersModel, seed: number): void {
  const classes = tf.serialization.SerializationMap.getMap().classNameMap;
  let n = 0;
  for (const layer of model.layers) {
    const config = layer.getConfig() as Record<string, unknown>;
    for (const w of layer.weights) {
      // kernel -> kernelInitializer, depthwise_kernel -> depthwiseInitializer, moving_mean -> movingMeanInitializer.
      const base = w.originalName.slice(w.originalName.lastIndexOf('/') + 1).replace(/_kernel$/, '');
      const key = `${base.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())}Initializer`;
      const s = config[key] as SerializedInit | undefined;
      const entry = s && classes[s.className];
      if (!s || !entry)
        throw new Error(
          `lottery: cannot re-initialise ${w.originalName} of layer '${layer.name}' (${layer.getClassName()}): its config has no ${key}${s ? ` of a known class (${s.className})` : ''}`,
        );
      const [cls, fromConfig] = entry;
      // Initialisers without randomness (zeros, ones, constant) ignore the seed.
      const init = fromConfig(cls, { ...s.config, seed: hash32(seed, n++) }) as unknown as Initializer;
      const v = init.apply(w.shape as number[], 'float32');
      w.write(v);
      v.dispose();
    }
  }
  if (n !== model.weights.length)
    throw new Error(
      `lottery: re-initialised ${n} weights of model '${model.name}', which has ${model.weights.length}`,
    );
}
