/**
 * Structured (channel) pruning as a pipeline stage (prune/structured.ts: L1 filter norms, Li et al.,
 * "Pruning Filters for Efficient ConvNets", ICLR 2017; or batch-norm scales, Liu et al., "Learning
 * Efficient Convolutional Networks through Network Slimming", ICCV 2017): a smaller dense model, so
 * nothing has to be kept zero afterwards.
 */
import { z } from 'zod';
import { pruneChannels } from '../prune/structured.js';
import type { StageDescriptor } from './types.js';

export const pruneStructuredSchema = z.strictObject({
  kind: z.literal('structured'),
  fraction: z.number().min(0).lt(1),
  criterion: z.enum(['l1', 'bn-scale']).default('l1'),
  /** Kept channels per group rounded to a multiple of this (8 suits onnxruntime's blocked convs). */
  roundTo: z.number().int().min(1).default(1),
});
export type PruneStructuredConfig = z.output<typeof pruneStructuredSchema>;

export const pruneStructured: StageDescriptor<PruneStructuredConfig> = {
  name: 'prune-structured',
  key: 'prune',
  when: { kind: 'structured' },
  schema: pruneStructuredSchema,
  label: 'prune',
  measured: true,
  needs: { finetune: true },
  async run(ctx, p) {
    const { model } = pruneChannels(ctx.model, {
      fraction: p.fraction,
      criterion: p.criterion,
      roundTo: p.roundTo,
    });
    await ctx.finetune(model);
    return { model };
  },
};
