/**
 * Low-rank factorization as a pipeline stage (lowrank-model.ts: truncated SVD of each conv and dense
 * kernel into two layers; Jaderberg, Vedaldi & Zisserman, "Speeding up Convolutional Neural Networks
 * with Low Rank Expansions", BMVC 2014), then fine-tuning of the new, smaller model.
 */
import { z } from 'zod';
import { edgeLayers, factorizeModel } from '../lowrank-model.js';
import type { StageDescriptor } from './types.js';

export const lowrankSchema = z.strictObject({
  rank: z.union([
    z.strictObject({ energy: z.number().gt(0).max(1) }),
    z.strictObject({ sizeFraction: z.number().gt(0).max(1) }),
  ]),
  /** Keep the stem conv and the classifier whole: few weights, much of the accuracy. */
  skipEdges: z.boolean().default(true),
  /** Factorize a layer only when that saves at least this fraction of its weights. */
  minSaving: z.number().lt(1).default(0.1),
});
export type LowrankConfig = z.output<typeof lowrankSchema>;

export const lowrank: StageDescriptor<LowrankConfig> = {
  name: 'lowrank',
  key: 'lowrank',
  schema: lowrankSchema,
  label: 'lowrank',
  measured: true,
  needs: { finetune: true },
  refusesAfter: {
    'prune-magnitude':
      'lowrank after unstructured pruning would refill the zeros (the factors are dense); use one of them',
    lottery: "lowrank after lottery would refill the ticket's zeros (the factors are dense); use one of them",
    rigl: 'lowrank after rigl would refill its zeros (the factors are dense); use one of them',
  },
  async run(ctx, l) {
    const r = factorizeModel(ctx.model, {
      rank: l.rank,
      minSaving: l.minSaving,
      ...(l.skipEdges ? { skip: edgeLayers(ctx.model) } : {}),
    });
    ctx.log(
      `lowrank: ${r.layers.length} layers factorized (${r.layers.map((x) => `${x.layer} r${x.rank}/${x.maxRank}`).join(', ')}); ${r.skipped.length} kept whole`,
    );
    await ctx.finetune(r.model);
    return { model: r.model };
  },
};
