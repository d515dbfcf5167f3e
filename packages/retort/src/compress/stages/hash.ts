/**
 * HashedNets as a pipeline stage (hashed-model.ts: Chen, Wilson, Tyree, Weinberger & Chen,
 * "Compressing Neural Networks with the Hashing Trick", ICML 2015): each chosen kernel becomes
 * K = ceil(n / factor) shared, sign-flipped buckets, started at the least-squares projection of the
 * trained kernel and fine-tuned end to end; the model handed on holds the virtual kernels as plain
 * Dense / Conv2D weights, so the exports need nothing new. The log counts the stored kernel weights
 * (the buckets); the report row counts the model handed on, whose kernels are the virtual ones.
 */
import { z } from 'zod';
import { hashModel, unhashModel } from '../hashed-model.js';
import type { StageDescriptor } from './types.js';

export const hashSchema = z.strictObject({
  /** Compression factor of each hashed kernel (n weights kept as ceil(n / factor) buckets). */
  factor: z.number().gt(1),
  /** Which kernels are hashed: Dense only, or Dense and Conv2D (same hash over [kh, kw, Cin, Cout]). */
  layers: z.enum(['dense', 'all']).default('dense'),
  /**
   * Keep the classifier (and, with layers 'all', the stem conv) whole. Off by default: in an MLP the
   * classifier is often below minWeights anyway, and the paper hashes every layer.
   */
  skipEdges: z.boolean().default(false),
  /** Hash only kernels with at least this many weights. */
  minWeights: z.number().int().min(1).default(1000),
  /** Seed of the hashes (uint32). */
  seed: z.number().int().min(0).max(0xffffffff).default(0),
});
export type HashConfig = z.output<typeof hashSchema>;

export const hash: StageDescriptor<HashConfig> = {
  name: 'hash',
  key: 'hash',
  schema: hashSchema,
  label: 'hash',
  measured: true,
  needs: { finetune: true },
  refusesAfter: {
    'prune-magnitude':
      'hash after unstructured pruning: a bucket is shared by weights from many positions, so the pruning masks no longer map to weights; use one of them',
    rigl: 'hash after rigl: a bucket is shared by weights from many positions, so its masks no longer map to weights; use one of them',
    tucker:
      'hash after tucker would hash the already-truncated factors, compounding both errors; use one of them',
    lottery:
      "hash after lottery: a bucket is shared by weights from many positions, so the ticket's mask no longer maps to weights; use one of them",
    lowrank:
      'hash after lowrank would hash the already-truncated factors, compounding both errors; use one of them',
  },
  async run(ctx, c) {
    // Any masking stage, not only the ones refusesAfter names: shared buckets cannot keep zeros.
    if (ctx.masks !== null)
      throw new Error(
        'hash: an earlier stage left sparsity masks; a bucket is shared by many positions, so hashing cannot keep the pruned zeros',
      );
    const r = hashModel(ctx.model, c);
    const before = r.layers.reduce((a, l) => a + l.weights, 0);
    const after = r.layers.reduce((a, l) => a + l.buckets, 0);
    const count = (kind: string, what: string) => {
      const n = r.layers.filter((l) => l.kind === kind).length;
      return n === 0 ? [] : [`${n} ${what} layer${n === 1 ? '' : 's'}`];
    };
    const fmt = (n: number) => n.toLocaleString('en-US');
    ctx.log(
      `hash: ${[...count('Dense', 'dense'), ...count('Conv2D', 'conv')].join(' and ')}, ${fmt(before)} -> ${fmt(after)} stored kernel weights (${(before / after).toFixed(1)}x); ` +
        `start error ${r.layers.map((l) => `${l.layer} ${l.relError.toFixed(3)}`).join(', ')}` +
        (r.skipped.length > 0
          ? `; kept whole: ${r.skipped.map((s) => `${s.layer} (${s.reason})`).join(', ')}`
          : ''),
    );
    await ctx.finetune(r.model);
    // What the hashed model stores: its buckets and every weight left unhashed (biases, other layers).
    // The exporters read plain layers; the .rtz bundle keeps the hashed form (buckets and seeds).
    const storedWeights = r.model.countParams();
    const model = unhashModel(r.model);
    return { model, storedWeights, bundle: r.model };
  },
};
