/**
 * Tucker-2 decomposition as a pipeline stage (tucker-model.ts: each k x k conv becomes 1 x 1 ->
 * k x k core -> 1 x 1; Kim, Park, Yoo, Choi, Yang & Shin, "Compression of Deep Convolutional Neural
 * Networks for Fast and Low Power Mobile Applications", ICLR 2016), then fine-tuning of the new,
 * smaller model: Kim et al.'s scheme is rank selection (EVBMF), decomposition, then fine-tuning to
 * recover the accuracy the decomposition loses.
 */
import { z } from 'zod';
import { edgeLayers } from '../lowrank-model.js';
import { type TuckerResult, tuckerModel } from '../tucker-model.js';
import type { StageDescriptor } from './types.js';

export const tuckerSchema = z.strictObject({
  /** Per-mode energy, a size target for the three kernels, or EVBMF on each unfolding (Kim et al.'s choice). */
  rank: z
    .union([
      z.strictObject({ energy: z.number().gt(0).max(1) }),
      z.strictObject({ sizeFraction: z.number().gt(0).max(1) }),
      z.literal('vbmf'),
    ])
    .default('vbmf'),
  /** Dense layers: truncated SVD at the same rule (lowrank-model.ts), or kept whole. */
  dense: z.enum(['svd', 'keep']).default('keep'),
  /** Keep the stem conv and the classifier whole: few weights, much of the accuracy. */
  skipEdges: z.boolean().default(true),
  /** Factorize a layer only when that saves at least this fraction of its weights. */
  minSaving: z.number().lt(1).default(0.1),
});
export type TuckerConfig = z.output<typeof tuckerSchema>;

/** One line: what was factorized at which ranks, what was kept, and the conv MACs before and after. */
export function tuckerSummary(r: TuckerResult): string {
  const { before, after } = r.convMacs;
  const change = before > 0 ? (100 * (after - before)) / before : 0;
  const sign = change <= 0 ? '\u2212' : '+';
  return (
    `tucker: ${r.layers.length} layers factorized (${r.layers.map((l) => `${l.layer} r${l.ranks.join('/')}`).join(', ')}); ` +
    `${r.skipped.length} kept whole; conv MACs ${before} -> ${after} (${sign}${Math.abs(change).toFixed(1)}%)`
  );
}

export const tucker: StageDescriptor<TuckerConfig> = {
  name: 'tucker',
  key: 'tucker',
  schema: tuckerSchema,
  label: 'tucker',
  measured: true,
  needs: { finetune: true },
  refusesAfter: {
    'prune-magnitude':
      'tucker after unstructured pruning would refill the zeros (the factors are dense); use one of them',
    lottery: "tucker after lottery would refill the ticket's zeros (the factors are dense); use one of them",
    rigl: 'tucker after rigl would refill its zeros (the factors are dense); use one of them',
  },
  async run(ctx, c) {
    const r = tuckerModel(ctx.model, {
      rank: c.rank,
      dense: c.dense,
      minSaving: c.minSaving,
      ...(c.skipEdges ? { skip: edgeLayers(ctx.model) } : {}),
    });
    // A model with nothing to factorize would be fine-tuned and reported as if it were compressed.
    if (r.layers.length === 0)
      throw new Error(
        `tucker: no conv to factorize (${r.skipped.map((k) => `${k.layer}: ${k.reason}`).join('; ')}); Tucker-2 applies to k x k convs (dense layers with tucker.dense: svd)`,
      );
    ctx.log(tuckerSummary(r));
    await ctx.finetune(r.model);
    return { model: r.model };
  },
};
