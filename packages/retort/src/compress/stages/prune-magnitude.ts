/**
 * Unstructured magnitude pruning as a pipeline stage (prune/magnitude.ts: Han et al., "Learning both
 * Weights and Connections for Efficient Neural Networks", NeurIPS 2015), at once (one-shot) or
 * raised over the fine-tuning epochs (AGP: Zhu and Gupta, "To prune, or not to prune", ICLR
 * workshop 2018; prune/schedule.ts). The masks outlive the stage: later stages that train keep the
 * zeros (StageContext.masks).
 */
import { z } from 'zod';
import { keepingMasks, MaskSet } from '../prune/magnitude.js';
import { sparsityAt } from '../prune/schedule.js';
import type { StageDescriptor } from './types.js';

export const pruneMagnitudeSchema = z.strictObject({
  kind: z.literal('unstructured'),
  sparsity: z.number().min(0).lt(1),
  scope: z.enum(['layer', 'global']).default('global'),
  /** one-shot: prune then fine-tune; agp: raise sparsity over the fine-tuning epochs. */
  schedule: z.enum(['one-shot', 'agp']).default('one-shot'),
});
export type PruneMagnitudeConfig = z.output<typeof pruneMagnitudeSchema>;

export const pruneMagnitude: StageDescriptor<PruneMagnitudeConfig> = {
  name: 'prune-magnitude',
  key: 'prune',
  when: { kind: 'unstructured' },
  schema: pruneMagnitudeSchema,
  label: 'prune',
  measured: true,
  needs: { finetune: true },
  async run(ctx, p) {
    const agp = {
      kind: 'agp' as const,
      initial: 0,
      final: p.sparsity,
      start: 0,
      steps: Math.max(1, ctx.epochs - 1),
      every: 1,
    };
    // AGP raises the sparsity between epochs; with fewer than 2 it would reach the target only after
    // the last epoch, leaving the final pruning untrained (ResNet-8 at 80%: 30% top-1), so it
    // prunes at once as one-shot does.
    const gradual = p.schedule === 'agp' && ctx.epochs >= 2;
    if (p.schedule === 'agp' && !gradual)
      ctx.log(`prune: agp needs at least 2 fine-tuning epochs (${ctx.epochs} given); pruning at once`);
    const m = MaskSet.prune(ctx.model, gradual ? sparsityAt(agp, 0) : p.sparsity, p.scope);
    await ctx.finetune(
      ctx.model,
      (t) => keepingMasks(t, m),
      gradual ? (epoch) => m.update(sparsityAt(agp, epoch), p.scope) : undefined,
    );
    m.update(p.sparsity, p.scope);
    return { masks: m };
  },
};
