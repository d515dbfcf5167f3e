/**
 * Lottery tickets as a pipeline stage: iterative magnitude pruning with rewinding (Frankle &
 * Carbin, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks", ICLR 2019;
 * rewinding to an early epoch instead of the initialisation: Frankle, Dziugaite, Roy & Carbin,
 * "Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020). Each round prunes
 * `rate` of the kernel weights still alive by the magnitudes the last training left (MaskSet,
 * global by default), rewinds every weight (kernels, biases, batch-norm parameters and statistics)
 * to the rewind point, re-applies the mask and trains again with ctx.finetune (CE + KD from the
 * uncompressed model, the pipeline's finetune settings, a fresh optimizer and schedule), the mask
 * re-applied after every optimizer step. After R rounds the sparsity is 1 - (1 - rate)^R; given a
 * target `sparsity` instead of `rounds`, R is the fewest rounds that reach it and the last round
 * stops at the target exactly (lottery.ts roundsFor).
 *
 * Where the rewind point comes from. A Retort run folder (train/run-dir.ts) keeps its initial
 * weights (init.ckpt), its final ones (model.ckpt), the last two epochs' trainer checkpoints
 * (checkpoints/last.ckpt, previous.ckpt) and, with a validation split, best.ckpt; no other epochs.
 * So:
 * - `rewind: 'start'` (default) rewinds to the weights the stage receives; round 1 prunes those.
 *   Meant for a trained student: every round re-trains the trained dense weights under the new
 *   mask, the latest rewind point of Renda, Frankle & Carbin, "Comparing Rewinding and
 *   Fine-tuning in Neural Network Pruning", ICLR 2020. Against the random re-initialisation this
 *   compares pruned trained weights with training from scratch, not the tickets of the papers.
 * - `rewind: { epoch: k }` without `rewindFrom`: the stage first trains the dense model (round 0,
 *   finetune.epochs, as IMP trains the dense network before the first pruning) and rewinds to the
 *   weights after its epoch k (k <= finetune.epochs). On an untrained model (`model: { tfjs }`, kd 0,
 *   as the uncompressed model teaches nothing) k = 0 is Frankle & Carbin's rewinding to the
 *   initialisation and a small k that of Frankle et al.
 * - `rewind: 'init'` or `{ epoch: k }` with `rewindFrom`: the weights of that checkpoint file
 *   (saveModelWeights, or a trainer checkpoint of epoch k); the stage's input must be the network
 *   trained from them: for 'init' the student run's `<run>/init.ckpt`, as in Frankle & Carbin (train,
 *   prune, rewind to the initialisation, train again). The stage does not know which run its input
 *   came from, so the config is refused without `rewindFrom`, and a file that is missing, of
 *   another epoch, or a run's model.ckpt is refused naming it (lottery.ts readRewindPoint).
 *
 * The control (`control: 'random-reinit'`, default): after the last round, the final mask on a
 * random re-initialisation (the layers' own initialisers, other seeds) trained for the same
 * finetune.epochs, as the papers' "random reinit"; it becomes the report row `lottery-random-reinit`
 * (StageOutcome.controls) beside the ticket's `lottery`, at the same sparsity. Each round and the
 * control log one row of a table: sparsity and the training top-1 of its last epoch (the test split
 * is not served to stages; the report rows carry test top-1). Every round fine-tunes into the same
 * <run>/lottery/ folder: its metrics.jsonl lists the rounds one after another, and its checkpoints
 * (checkpoints/last.ckpt, best.ckpt) end as the last round's, the ticket's. The control trains into
 * <run>/lottery-random-reinit/, the folder of its report row, so its checkpoints and metrics
 * neither replace the ticket's nor are read as them.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { topkCorrect } from '../../train/metrics.js';
import type { TrainTask } from '../../train/trainer.js';
import {
  readRewindPoint,
  reinitializeWeights,
  restoreWeights,
  roundSparsities,
  roundsFor,
  snapshotWeights,
  type WeightSnapshot,
} from '../lottery.js';
import { keepingMasks, MaskSet } from '../prune/magnitude.js';
import type { FinetuneOptions, StageContext, StageDescriptor } from './types.js';

export const lotterySchema = z
  .strictObject({
    /** Fraction of the surviving kernel weights pruned each round (Frankle & Carbin: 0.2). */
    rate: z.number().gt(0).lt(1).default(0.2),
    /** Number of rounds; or give `sparsity`. */
    rounds: z.number().int().min(1).optional(),
    /** Final sparsity; the rounds are the fewest that reach it. */
    sparsity: z.number().gt(0).lt(1).optional(),
    scope: z.enum(['global', 'layer']).default('global'),
    rewind: z
      .union([z.enum(['start', 'init']), z.strictObject({ epoch: z.number().int().min(0) })])
      .default('start'),
    /** A checkpoint file holding the weights of `rewind` ('init' or { epoch }). */
    rewindFrom: z.string().optional(),
    /** random-reinit: also train the final mask from a random re-initialisation, as a report row. */
    control: z.enum(['random-reinit', 'none']).default('random-reinit'),
    /** Seed of the control's re-initialisation. */
    seed: z.number().int().min(0).default(1),
  })
  .superRefine((c, ctx) => {
    if ((c.rounds === undefined) === (c.sparsity === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `give exactly one of rounds or sparsity; got ${c.rounds === undefined ? 'none' : 'both'}`,
      });
    if (c.rewind === 'init' && c.rewindFrom === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['rewindFrom'],
        message:
          "required with rewind 'init': the checkpoint of the initial weights, e.g. <runs>/<student run>/init.ckpt, which every Retort run writes (model.ckpt and checkpoints/ hold trained ones); or rewind { epoch: 0 } on an untrained model, which the stage then trains first",
      });
    if (c.rewind === 'start' && c.rewindFrom !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['rewindFrom'],
        message: "applies to rewind 'init' or { epoch }; 'start' rewinds to the weights the stage receives",
      });
  });
export type LotteryConfig = z.output<typeof lotterySchema>;

/** The control's name: its report row and fine-tuning folder are lottery-random-reinit. */
const CONTROL = 'random-reinit';

/** The training top-1 (%) of the last finished epoch, counted on the logits of the training steps. */
class LastEpochTop1 {
  private hits = 0;
  private seen = 0;
  value = Number.NaN;
  count(logits: Float32Array, labels: Int32Array, classes: number): void {
    this.hits += topkCorrect(logits, labels, classes, [1])[0]!;
    this.seen += labels.length;
  }
  endEpoch(): void {
    this.value = this.seen > 0 ? (100 * this.hits) / this.seen : Number.NaN;
    this.hits = 0;
    this.seen = 0;
  }
}

/**
 * ctx.finetune of ctx.model, the mask kept after every optimizer step; returns the last epoch's
 * training top-1. `opts.control` names the control being trained (its own folder).
 */
async function train(
  ctx: StageContext,
  masks: MaskSet | null,
  onEpoch?: (epoch: number) => void,
  opts?: FinetuneOptions,
): Promise<number> {
  const top1 = new LastEpochTop1();
  await ctx.finetune(
    ctx.model,
    (t): TrainTask =>
      keepingMasks(
        {
          ...t,
          loss: (input) => {
            const out = t.loss(input);
            if (out.logits)
              top1.count(
                out.logits.dataSync() as Float32Array,
                input.y.dataSync() as Int32Array,
                out.logits.shape[1] as number,
              );
            return out;
          },
        },
        masks,
      ),
    (epoch) => {
      top1.endEpoch();
      onEpoch?.(epoch);
    },
    opts,
  );
  masks?.apply();
  return top1.value;
}

/** A new model of `model`'s architecture (tfjs serialization), for the control's report row. */
async function copyArchitecture(model: tfl.LayersModel): Promise<tfl.LayersModel> {
  const json = model.toJSON(null, false);
  try {
    if (typeof json === 'string') throw new Error('toJSON returned a string');
    return await tfl.models.modelFromJSON(json);
  } catch (e) {
    throw new Error(
      `lottery: control random-reinit needs a copy of model '${model.name}' for its report row, and tfjs could not rebuild it from its config (${(e as Error).message}); set lottery.control: none`,
    );
  }
}

export const lottery: StageDescriptor<LotteryConfig> = {
  name: 'lottery',
  key: 'lottery',
  schema: lotterySchema,
  label: 'lottery',
  measured: true,
  needs: { finetune: true },
  // Registered after both prune stages so that this check sees them (refusesAfter looks back only).
  refusesAfter: {
    'prune-magnitude':
      'lottery prunes by itself (iterative magnitude pruning); use lottery or prune, not both',
    'prune-structured':
      'lottery prunes by itself (iterative magnitude pruning); use lottery or prune, not both',
  },
  async run(ctx, c) {
    if (ctx.masks !== null)
      throw new Error('lottery: an earlier stage left sparsity masks; lottery starts from a dense model');
    const rounds = c.rounds ?? roundsFor(c.rate, c.sparsity!);
    const sparsities = roundSparsities(c.rate, rounds, c.sparsity);
    const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
    const rows: string[] = [];
    const row = (round: string, rewound: string, sparsity: number, top1: number) =>
      rows.push(
        `| ${round} | ${rewound} | ${pct(sparsity)} | ${ctx.epochs} | ${Number.isNaN(top1) ? '-' : `${top1.toFixed(2)}%`} |`,
      );
    if (ctx.epochs === 0) ctx.log('lottery: finetune.epochs is 0, so the rounds prune without training');
    if (typeof c.rewind === 'object' && c.rewindFrom === undefined && c.rewind.epoch > ctx.epochs)
      throw new Error(
        `lottery: rewind { epoch: ${c.rewind.epoch} } is past the ${ctx.epochs} epochs of the dense round 0 (finetune.epochs)`,
      );
    // A copy of the model's architecture for the control's report row, made first: a model that
    // cannot be copied fails before any training.
    const twin = c.control === 'random-reinit' ? await copyArchitecture(ctx.model) : null;
    let masks: MaskSet | null = null;
    try {
      let rewind: WeightSnapshot;
      let from: string;
      if (c.rewind === 'start') {
        rewind = snapshotWeights(ctx.model);
        from = 'start';
      } else if (c.rewindFrom !== undefined) {
        rewind = readRewindPoint(ctx.model, c.rewindFrom, c.rewind);
        from = c.rewindFrom;
      } else if (c.rewind === 'init') {
        throw new Error("lottery: rewind 'init' needs rewindFrom (the schema requires it)");
      } else {
        const k = c.rewind.epoch;
        let at: WeightSnapshot | null = k === 0 ? snapshotWeights(ctx.model) : null;
        ctx.log(`lottery: round 0: training the dense model, keeping the weights after epoch ${k}`);
        const top1 = await train(ctx, null, (e) => {
          if (e === k) at = snapshotWeights(ctx.model);
        });
        row('0 (dense)', '-', 0, top1);
        rewind = at!;
        from = `round 0 epoch ${k}`;
      }
      for (const [i, s] of sparsities.entries()) {
        // Pruning by the magnitudes the last training reached; the pruned weights are exactly 0, so
        // a higher target keeps them pruned and takes `rate` of the survivors (MaskSet.update).
        if (masks === null) masks = MaskSet.prune(ctx.model, s, c.scope);
        else masks.update(s, c.scope);
        restoreWeights(ctx.model, rewind, `rewind point (${from})`);
        masks.apply();
        ctx.log(`lottery: round ${i + 1}/${rounds}: sparsity ${pct(masks.sparsity())}, rewound to ${from}`);
        row(`${i + 1}`, from, masks.sparsity(), await train(ctx, masks));
      }
      const final = masks!;
      if (twin !== null) {
        const ticket = snapshotWeights(ctx.model);
        reinitializeWeights(ctx.model, c.seed);
        final.apply();
        ctx.log(`lottery: control: the final mask on a random re-initialisation (seed ${c.seed})`);
        row(
          CONTROL,
          `seed ${c.seed}`,
          final.sparsity(),
          await train(ctx, final, undefined, { control: CONTROL }),
        );
        restoreWeights(twin, snapshotWeights(ctx.model), 'random re-initialisation');
        restoreWeights(ctx.model, ticket, 'ticket');
      }
      ctx.log('lottery: | round | rewound to | sparsity | epochs | train top-1 (last epoch) |');
      ctx.log('lottery: |---|---|---|---|---|');
      for (const r of rows) ctx.log(`lottery: ${r}`);
      return { masks: final, ...(twin ? { controls: [{ name: CONTROL, model: twin }] } : {}) };
    } catch (e) {
      twin?.dispose();
      masks?.dispose();
      throw e;
    }
  },
};
