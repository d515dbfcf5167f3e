/**
 * Shared parts of the spaces whose candidates are a fixed list of genes, each a number chosen from a
 * finite list (resnet.ts, mobilenetv2.ts): drawing, one-gene mutation, range checks and counting,
 * written once so that every such space stays in range the same way. Also the zod pieces the
 * spaces' range schemas are made of.
 */
import { z } from 'zod';
import type { Rng } from '../../util/rng.js';

/** One gene: a number from `choices`, at candidate[key], or candidate[key][index] for a list. */
export interface Gene {
  readonly key: string;
  readonly index?: number;
  readonly choices: readonly number[];
}

/** A candidate made of genes: numbers and lists of numbers by key. */
export type GeneValues = Readonly<Record<string, number | readonly number[]>>;

/** A uniformly drawn element of the non-empty `xs`. */
export function pick<T>(rng: Rng, xs: readonly T[]): T {
  if (xs.length === 0) throw new Error('pick: no choices');
  return xs[rng.int(xs.length)]!;
}

/** A uniformly drawn element of `xs` other than `current` (xs must hold another one). */
export function pickOther(rng: Rng, xs: readonly number[], current: number): number {
  const others = xs.filter((x) => x !== current);
  return pick(rng, others);
}

/** min, min + 1, ..., max. */
export function intsBetween(r: { readonly min: number; readonly max: number }): number[] {
  return Array.from({ length: r.max - r.min + 1 }, (_, i) => r.min + i);
}

function geneName(g: Gene): string {
  return g.index === undefined ? g.key : `${g.key}[${g.index}]`;
}

function geneValue(c: GeneValues, g: Gene): number | undefined {
  const v = c[g.key];
  if (g.index === undefined) return typeof v === 'number' ? v : undefined;
  return Array.isArray(v) ? (v as readonly number[])[g.index] : undefined;
}

/** Each gene drawn uniformly from its choices, as a plain object (lists for indexed genes). */
export function sampleGenes(genes: readonly Gene[], rng: Rng): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  for (const g of genes) {
    const v = pick(rng, g.choices);
    if (g.index === undefined) out[g.key] = v;
    else {
      const list = (out[g.key] ?? []) as number[];
      list[g.index] = v;
      out[g.key] = list;
    }
  }
  return out;
}

/**
 * A copy of `c` with one gene, drawn among those with two or more choices, set to another of its
 * choices; an unchanged copy when no gene has a choice (a space of one point).
 */
export function mutateGenes(
  genes: readonly Gene[],
  c: GeneValues,
  rng: Rng,
): Record<string, number | number[]> {
  const out: Record<string, number | number[]> = {};
  for (const [k, v] of Object.entries(c)) out[k] = typeof v === 'number' ? v : [...v];
  const free = genes.filter((g) => g.choices.length > 1);
  if (free.length === 0) return out;
  const g = pick(rng, free);
  const current = geneValue(c, g);
  if (current === undefined) throw new Error(`mutate: candidate has no gene ${geneName(g)}`);
  const v = pickOther(rng, g.choices, current);
  if (g.index === undefined) out[g.key] = v;
  else (out[g.key] as number[])[g.index] = v;
  return out;
}

/** The first gene of `c` outside its choices, described; undefined when all are inside. */
export function genesOutside(genes: readonly Gene[], c: GeneValues): string | undefined {
  for (const g of genes) {
    const v = geneValue(c, g);
    if (v === undefined || !g.choices.includes(v))
      return `${geneName(g)} = ${String(v)} is not one of ${g.choices.join(', ')}`;
  }
  return undefined;
}

/** Number of candidates: the product of the genes' choice counts. */
export function genesSize(genes: readonly Gene[]): number {
  return genes.reduce((n, g) => n * g.choices.length, 1);
}

/** Numbers joined for a key: '1.2.1'. */
export function joinKey(xs: readonly number[]): string {
  return xs.join('.');
}

// ---- range schemas -------------------------------------------------------------------------------

/** An integer range `{ min, max }` with lo <= min <= max, defaulting to `def`. */
export function intRange(def: { min: number; max: number }, lo: number) {
  return z
    .strictObject({ min: z.int().min(lo), max: z.int().min(lo) })
    .refine((r) => r.min <= r.max, { message: 'min must be <= max', path: ['max'] })
    .default(() => ({ ...def }));
}

/**
 * A non-empty list of distinct numbers, defaulting to `def`; `item` checks each one.
 */
export function choiceList(def: readonly number[], item: z.ZodType<number>) {
  return z
    .array(item)
    .min(1, 'needs at least one choice')
    .refine((xs) => new Set(xs).size === xs.length, { message: 'choices must be distinct' })
    .default(() => [...def]);
}
