/**
 * k-means weight sharing as a pipeline stage (cluster-model.ts: Han, Mao & Dally, "Deep Compression",
 * ICLR 2016, section 3): every kernel keeps at most `clusters` values, and fine-tuning trains the
 * codebooks with the cluster of each weight fixed.
 */
import { z } from 'zod';
import { type ClusterTask, clusterModel, withClusterFinetune } from '../cluster-model.js';
import type { StageDescriptor } from './types.js';

export const clusterSchema = z.strictObject({
  clusters: z.number().int().min(2).max(65536),
  /**
   * How a centroid moves with its weights' updates: 'mean' (default) is a step no larger than
   * one weight's; 'sum' is Han et al.'s summed gradient, whose step grows with the cluster.
   */
  reduce: z.enum(['sum', 'mean']).default('mean'),
});
export type ClusterConfig = z.output<typeof clusterSchema>;

export const cluster: StageDescriptor<ClusterConfig> = {
  name: 'cluster',
  key: 'cluster',
  schema: clusterSchema,
  label: 'cluster',
  measured: true,
  needs: { finetune: true },
  async run(ctx, c) {
    const { model } = ctx;
    // After unstructured pruning the zeros get a frozen centroid of their own (Deep Compression), so
    // the codebook fine-tuning keeps them without re-applying the masks.
    const books = clusterModel(model, { clusters: c.clusters, seed: 0, keepZeros: ctx.masks !== null });
    let task: ClusterTask | null = null;
    await ctx.finetune(model, (t) => {
      task = withClusterFinetune(t, model, books, { reduce: c.reduce });
      return task;
    });
    (task as ClusterTask | null)?.dispose();
    return { clusters: c.clusters };
  },
};
