/**
 * The `search` section of an experiment file (`retort search`): which space, which strategy, which
 * constraints on which latency setting, and how short each candidate's proxy training is. The rest
 * of the experiment (teacher, data, losses, optimizer, schedule) is the recipe every candidate is
 * trained with. Strict like the rest of the config: a misspelt key fails and the error lists the
 * valid ones.
 */
import { z } from 'zod';
import { parseOrThrow } from '../config/errors.js';
import { zoo } from '../models/index.js';
import { type SpaceConfig, spaceSchema } from './space-config.js';

const EVOLUTION_ONLY = ['population', 'sample', 'cycles'] as const;
const HALVING_ONLY = ['candidates', 'eta', 'rungs'] as const;

/**
 * Aging evolution (`population`, tournament `sample`, `cycles` children) or successive halving
 * (`candidates` at rung 0, the top 1/eta go on with eta times the proxy epochs, at most `rungs`).
 * Unset numbers take runSearch's defaults (strategyOptions below).
 */
export const strategySchema = z
  .strictObject({
    name: z.enum(['evolution', 'halving']).default('evolution'),
    /** evolution: members of the population (16). */
    population: z.int().min(1).optional(),
    /** evolution: tournament size (4). */
    sample: z.int().min(1).optional(),
    /** evolution: children made after the initial population (64). */
    cycles: z.int().min(0).optional(),
    /** halving: candidates at rung 0 (27). */
    candidates: z.int().min(1).optional(),
    /** halving: 1/eta of a rung goes on with eta times the epochs (3); an integer, so epochs stay whole. */
    eta: z.int().min(2).optional(),
    /** halving: at most this many rungs (default: down to one candidate). */
    rungs: z.int().min(1).optional(),
    /** Candidates trained at once: one batch, run as that many sweep jobs (1). */
    parallel: z.int().min(1).optional(),
    /** Seed of the search's draws and mutations (default: the experiment's seed). */
    seed: z.int().min(0).optional(),
  })
  .superRefine((s, ctx) => {
    const other = s.name === 'evolution' ? HALVING_ONLY : EVOLUTION_ONLY;
    for (const k of other)
      if (s[k] !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: `applies to strategy ${s.name === 'evolution' ? 'halving' : 'evolution'} only (this one is ${s.name})`,
        });
  });
export type StrategyConfig = z.output<typeof strategySchema>;

/** Upper bounds; a candidate over any of them is never trained. */
export const constraintsSchema = z
  .strictObject({
    /** Milliseconds per forward pass at the `latency` setting, as the latency table predicts it. */
    latencyMs: z.number().positive().optional(),
    /** Parameters (weights, batch-norm statistics included). */
    params: z.number().positive().optional(),
    /** Multiply-accumulates per image. */
    macs: z.number().positive().optional(),
    /**
     * A zoo model (e.g. resnet8): at most its latency on this machine, predicted by the same table
     * (with latencyMs too, the smaller bound counts).
     */
    latencyOf: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.latencyOf !== undefined && !zoo.has(c.latencyOf))
      ctx.addIssue({
        code: 'custom',
        path: ['latencyOf'],
        message: `unknown model '${c.latencyOf}' (known: ${zoo.list().join(', ')})`,
      });
  });

/** The setting whose latency is constrained and reported. */
export const latencySchema = z.strictObject({
  runtime: z.enum(['onnxruntime', 'native']).default('onnxruntime'),
  batch: z.int().min(1).default(1),
  /**
   * The latency table file (default <runs>/.cache/search/latency-table.json): one table per
   * machine fingerprint, shared by every search that uses the file.
   */
  table: z.string().min(1).optional(),
});

/** The short training that scores a candidate (rung r of halving: epochs * eta^r). */
export const proxySchema = z.strictObject({
  epochs: z.int().min(1).default(1),
  /** Train on the first N training images only (default: the recipe's data.trainLimit). */
  trainLimit: z.int().min(1).optional(),
  /**
   * Hold out this fraction of the (limited) training images and score candidates on it instead of
   * the test split (default: the recipe's data.valFraction).
   */
  valFraction: z.number().min(0).max(0.5).optional(),
});

export const searchConfigSchema = z.strictObject({
  space: spaceSchema,
  strategy: strategySchema.default({ name: 'evolution' }),
  constraints: constraintsSchema.default({}),
  latency: latencySchema.default({ runtime: 'onnxruntime', batch: 1 }),
  proxy: proxySchema.default({ epochs: 1 }),
});
export type SearchConfig = Omit<z.output<typeof searchConfigSchema>, 'space'> & { space: SpaceConfig };

/**
 * The `search` section of `where` (a file name for errors), parsed: errors name `search.<key>`,
 * unknown keys with the valid ones.
 */
export function parseSearchConfig(section: unknown, where: string): SearchConfig {
  return parseOrThrow(z.strictObject({ search: searchConfigSchema }), { search: section }, where).search;
}

/** The strategy with every number resolved (runSearch's defaults where unset). */
export interface ResolvedStrategy {
  name: 'evolution' | 'halving';
  population: number;
  sample: number;
  cycles: number;
  candidates: number;
  eta: number;
  rungs: number | undefined;
  parallel: number;
  seed: number;
}

/** `s` with the defaults filled in; `seed` falls back to `defaultSeed` (the experiment's). */
export function resolveStrategy(s: StrategyConfig, defaultSeed: number): ResolvedStrategy {
  return {
    name: s.name,
    population: s.population ?? 16,
    sample: s.sample ?? 4,
    cycles: s.cycles ?? 64,
    candidates: s.candidates ?? 27,
    eta: s.eta ?? 3,
    rungs: s.rungs,
    parallel: s.parallel ?? 1,
    seed: s.seed ?? defaultSeed,
  };
}
