/**
 * The state of a search (evolution.ts) between two batches, and the schema that checks one read
 * back: the state is a file format (run/search.ts saves it after every batch, resumeSearch takes it
 * back), so its shape lives apart from the search logic, and a file is checked before a search
 * continues from it.
 */
import { z } from 'zod';
import type { Cost, HistoryEntry } from './search-history.js';
import type { Candidate } from './space-config.js';

const candidateJson = z.record(z.string(), z.unknown());
const costJson = z.object({ latencyMs: z.number(), params: z.number(), macs: z.number() });
const pendingJson = z.object({ key: z.string(), candidate: candidateJson, cost: costJson });

/** The shape of a saved search state (see `SearchState`), checked by `resumeSearch`. */
export const searchStateSchema = z.object({
  version: z.literal(1),
  strategy: z.enum(['evolution', 'halving']),
  space: z.string(),
  rng: z.array(z.int().min(0)).length(4),
  cycle: z.int().min(0),
  rung: z.int().min(0),
  rungKeys: z.array(z.string()),
  queue: z.array(pendingJson),
  population: z.array(z.string()),
  history: z.array(
    z.object({
      order: z.int().min(0),
      key: z.string(),
      candidate: candidateJson,
      cost: costJson,
      accuracy: z.number().nullable(),
      error: z.string().optional(),
      rung: z.int().min(0),
      parent: z.string().optional(),
    }),
  ),
  done: z.boolean(),
});

/** A candidate drawn and costed, waiting for its evaluation. */
export interface Pending {
  readonly key: string;
  readonly candidate: Candidate;
  readonly cost: Cost;
}

/** The state of a search between two batches: plain JSON, to save and give to `resumeSearch`. */
export interface SearchState {
  readonly version: 1;
  readonly strategy: 'evolution' | 'halving';
  readonly space: string;
  /** The Rng's four state words. */
  rng: number[];
  /** Evolution: children made so far. */
  cycle: number;
  /** Halving: the rung being evaluated. */
  rung: number;
  /** Halving: keys entering the current rung. */
  rungKeys: string[];
  /** Candidates drawn but not evaluated yet (the rest of the initial population or of a rung). */
  queue: Pending[];
  /** Evolution: keys of the population, oldest first. */
  population: string[];
  history: HistoryEntry[];
  done: boolean;
}
