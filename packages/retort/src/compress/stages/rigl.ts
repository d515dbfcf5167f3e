/**
 * RigL as a pipeline stage (Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All
 * Tickets Winners", ICML 2020): sparse training that never trains the dense model. The network is
 * sparse from its first step at the layer densities of `distribution` (rigl.ts: ERK or uniform);
 * every `updateEvery` optimizer steps until `endFraction` of training, each layer drops the
 * fraction f_t = alpha/2 (1 + cos(pi t / T_end)) of its active weights with the smallest magnitude
 * and grows as many inactive connections where the dense gradient is largest, at 0. Training is
 * ctx.finetune (CE + KD from the uncompressed model, the pipeline's finetune epochs and optimizer),
 * the mask re-applied after every optimizer step; the masks are handed on so later stages keep the
 * zeros.
 *
 * By default (`reinit: true`) every weight is re-initialised with its layer's own initialiser and
 * the mask is drawn at random, as the paper trains from scratch: the stage's input gives only the
 * architecture. `reinit: false` starts from the given weights, pruned by magnitude per layer to the
 * same densities.
 *
 * The dense gradient for growing: after the optimizer step of an update step, the gradient of the
 * task's loss w.r.t. the masked kernels on that step's batch (tf.variableGrads, never applied), at
 * the weights the step left. That pass runs the task's loss as a training step does, in training
 * mode (batch norm on batch statistics, dropout on), so two of its side effects are undone: the
 * batch-norm statistics are put back, and so is the state of the seeded random stream
 * (util/rng.ts seedEverything; dropout draws its seeds from it), so the pass does not count as a
 * second training step and the steps after it draw the numbers they would have drawn without it.
 * Runs that differ only in `updateEvery` therefore share their random draws step for step; their
 * weights part at their first update, whose connectivity differs. (Running the pass in inference
 * mode would avoid the draws too, but would take the gradient through the running batch-norm
 * statistics instead of the step's batch statistics, another function than the one trained.)
 * T_end needs the number of steps: the loader's batches per epoch (ctx.stepsPerEpoch), or, for a
 * stream, those counted in the first epoch, which then passes without updates.
 *
 * A grown connection starts fresh, as in the paper's code: its weight at 0 and its optimizer state
 * (SGD's momentum buffer, Adam's m and v; train/optimizers.ts slotVariables) at 0. Masked weights
 * still get a gradient here (the mask is re-applied after the step, not multiplied into the
 * forward pass), so without the reset a grown weight's first steps would carry the momentum built
 * up while it was masked. Dropped connections' state is left alone: masked, their weight is put back
 * to 0 after every step, and it is reset when they grow again. A connection dropped and grown back
 * in the same update keeps its weight and its state (the paper's reinit_when_same false).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { hasSlots } from '../../train/optimizers.js';
import type { LrOptimizer, StepInput, TrainTask } from '../../train/trainer.js';
import { globalRng, Rng } from '../../util/rng.js';
import { reinitializeWeights } from '../lottery.js';
import { MaskSet, prunableKernels } from '../prune/magnitude.js';
import { activeCounts, dropFraction, dropGrow, isUpdateStep, magnitudeMask, randomMask } from '../rigl.js';
import type { StageDescriptor } from './types.js';

export const riglSchema = z.strictObject({
  /** Fraction of the Conv2D, DepthwiseConv2D and Dense kernel weights that are zero throughout. */
  sparsity: z.number().min(0).lt(1),
  /** erk: density of a layer ∝ sum/product of its kernel dims (paper's default); uniform: each layer at `sparsity`. */
  distribution: z.enum(['erk', 'uniform']).default('erk'),
  /** Optimizer steps between connectivity updates (the paper's ΔT). */
  updateEvery: z.number().int().min(1).default(100),
  /** Fraction of each layer's active weights moved at the first update (decays by cosine). */
  alpha: z.number().gt(0).max(1).default(0.3),
  /** Fraction of the training steps after which the connectivity stays fixed (T_end). */
  endFraction: z.number().gt(0).max(1).default(0.75),
  /** Re-initialise every weight and draw a random mask (train from scratch); false: prune the given weights by magnitude. */
  reinit: z.boolean().default(true),
  /** Seed of the re-initialisation and of the random mask. */
  seed: z.number().int().min(0).default(1),
});
export type RiglConfig = z.output<typeof riglSchema>;

const REFUSED =
  'rigl chooses its own sparse connectivity from a dense model; use rigl or prune/lottery, not both';

/**
 * The gradient of `task`'s loss on `x` w.r.t. each kernel (dense: masked positions included), as
 * flat arrays; the forward pass's batch-norm statistics and random draws are undone (file header).
 */
function denseGradients(
  model: tfl.LayersModel,
  task: TrainTask,
  x: StepInput,
  kernels: readonly { kernel: tf.Variable }[],
): Float32Array[] {
  const vars = kernels.map((k) => k.kernel);
  const stats = model.nonTrainableWeights.map((w) => tf.keep(w.read().clone()));
  const rng = globalRng();
  const drawn = rng?.getState();
  try {
    const { value, grads } = tf.variableGrads(() => task.loss(x).total, vars);
    const dense = vars.map(
      (v) => (grads[v.name]?.dataSync().slice() as Float32Array | undefined) ?? new Float32Array(v.size),
    );
    tf.dispose([value, ...Object.values(grads)]);
    return dense;
  } finally {
    if (drawn !== undefined) rng!.setState(drawn);
    model.nonTrainableWeights.forEach((w, i) => {
      w.write(stats[i]!);
    });
    tf.dispose(stats);
  }
}

/** Sets the entries `at` (flat positions) of `v` to 0. */
function zeroAt(v: tf.Variable, at: Uint32Array): void {
  if (at.length === 0) return;
  const values = (v.dataSync() as Float32Array).slice();
  for (const i of at) values[i] = 0;
  const t = tf.tensor(values, v.shape, 'float32');
  v.assign(t);
  t.dispose();
}

export const rigl: StageDescriptor<RiglConfig> = {
  name: 'rigl',
  key: 'rigl',
  schema: riglSchema,
  label: 'rigl',
  measured: true,
  needs: { finetune: true },
  refusesAfter: { 'prune-magnitude': REFUSED, 'prune-structured': REFUSED, lottery: REFUSED },
  async run(ctx, c) {
    if (ctx.masks !== null)
      throw new Error('rigl: an earlier stage left sparsity masks; rigl starts from a dense model');
    // Re-initialised and never trained, the model handed on would be random weights, measured and
    // exported as if they were a compressed model.
    if (c.reinit && ctx.epochs === 0)
      throw new Error(
        'rigl: finetune.epochs is 0, so the re-initialised sparse model would never be trained; give finetune.epochs, or rigl.reinit: false to prune the given weights',
      );
    if (c.reinit)
      try {
        reinitializeWeights(ctx.model, c.seed);
      } catch (e) {
        throw new Error(
          `rigl: reinit: ${(e as Error).message.replace(/^lottery: /, '')}; set rigl.reinit: false to start from the given weights`,
        );
      }
    const kernels = prunableKernels(ctx.model);
    const counts = activeCounts(
      kernels.map((k) => k.kernel.shape),
      c.sparsity,
      c.distribution,
    );
    const rng = new Rng(c.seed);
    const start = Object.fromEntries(
      kernels.map(({ layer, kernel }, i) => [
        layer,
        c.reinit
          ? randomMask(kernel.size, counts[i]!, rng)
          : magnitudeMask(kernel.dataSync() as Float32Array, counts[i]!),
      ]),
    );
    const masks = MaskSet.fromMasks(ctx.model, start, { sparsity: c.sparsity, scope: 'layer' }, 'rigl');
    const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
    ctx.log(
      `rigl: ${c.distribution} densities: ${kernels.map((k, i) => `${k.layer} ${pct(counts[i]! / k.kernel.size)}`).join(', ')}; sparsity ${pct(masks.sparsity())}, ${c.reinit ? `re-initialised (seed ${c.seed}), random mask` : 'magnitude mask of the given weights'}`,
    );
    if (ctx.epochs === 0) ctx.log('rigl: finetune.epochs is 0, so the sparse model is not trained');

    const endOf = (steps: number) => Math.floor(c.endFraction * steps * ctx.epochs);
    let tEnd = ctx.stepsPerEpoch === undefined ? undefined : endOf(ctx.stepsPerEpoch);
    const announce = (t: number) => {
      if (t <= c.updateEvery)
        ctx.log(
          `rigl: T_end is ${t} steps (endFraction ${c.endFraction} of ${ctx.epochs} epochs), not past updateEvery ${c.updateEvery}: the random mask is never updated`,
        );
    };
    if (tEnd === undefined)
      ctx.log(
        'rigl: the training loader does not know its length; counting the first epoch, without updates',
      );
    else if (ctx.epochs > 0) announce(tEnd);
    let step = 0;
    let moved = 0;
    let updates = 0;
    let input: StepInput | undefined;

    const update = (task: TrainTask, x: StepInput, end: number, optimizer: LrOptimizer) => {
      const dense = denseGradients(ctx.model, task, x, kernels);
      const f = dropFraction(step, c.alpha, end);
      const now = masks.state();
      let movedNow = 0;
      kernels.forEach(({ layer, kernel }, i) => {
        const r = dropGrow(kernel.dataSync() as Float32Array, now[layer]!, dense[i]!, f);
        const w = tf.tensor(r.weights, kernel.shape);
        kernel.assign(w);
        w.dispose();
        masks.setMask(layer, r.mask);
        if (hasSlots(optimizer)) for (const s of optimizer.slotVariables(kernel.name)) zeroAt(s, r.grown);
        movedNow += r.moved;
      });
      moved += movedNow;
      updates++;
      ctx.log(`rigl: step ${step}/${end}: drop fraction ${f.toFixed(4)}, ${movedNow} connections moved`);
    };

    try {
      await ctx.finetune(
        ctx.model,
        (t, optimizer): TrainTask => {
          if (!hasSlots(optimizer))
            ctx.log(
              `rigl: optimizer ${optimizer.getClassName()} does not expose its state (slotVariables), so grown connections keep theirs`,
            );
          return {
            ...t,
            prepare: (x) => {
              input = x;
              return t.prepare?.(x);
            },
            release: () => {
              try {
                step++;
                // The optimizer step moves masked weights too (their gradient is not zero).
                masks.apply();
                // Before the task's own release: the loss may read what its prepare made (teacher logits).
                if (tEnd !== undefined && input !== undefined && isUpdateStep(step, c.updateEvery, tEnd))
                  update(t, input, tEnd, optimizer);
              } finally {
                input = undefined;
                t.release?.();
              }
            },
          };
        },
        (epoch) => {
          if (epoch !== 1 || tEnd !== undefined) return;
          tEnd = endOf(step);
          ctx.log(`rigl: ${step} steps per epoch, T_end ${tEnd}`);
          announce(tEnd);
        },
      );
    } catch (e) {
      masks.dispose();
      throw e;
    }
    masks.apply();
    ctx.log(
      `rigl: ${updates} connectivity updates moved ${moved} connections; sparsity ${pct(masks.sparsity())}`,
    );
    return { masks };
  },
};
