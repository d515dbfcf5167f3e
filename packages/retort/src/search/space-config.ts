/**
 * The `space` section of a search config, `{ name: resnet, blocks: { min: 1, max: 3 } }`: the named
 * space's ranges are parsed by that space's own schema (defaults filled in), as compression
 * pipelines parse each stage's section with the stage's schema, so a space owns its options and
 * this file never asks which space it holds. `searchSpace` binds a parsed section to its space:
 * the object a search walks, with candidates checked at the door.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { parseOrThrow } from '../config/errors.js';
import type { ModelTaps } from '../models/common.js';
import { RetortError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import { spaceByName, spaceNames } from './spaces/registry.js';
import type { AnySpaceDescriptor, BuildContext } from './spaces/types.js';

/** A space section after parsing: the space's name and its ranges with defaults filled in. */
export type SpaceConfig = { readonly name: string } & Readonly<Record<string, unknown>>;

/** A candidate: a plain JSON object whose shape the space's `candidate` schema fixes. */
export type Candidate = Readonly<Record<string, unknown>>;

function validKeys(d: AnySpaceDescriptor): string {
  const keys = d.schema instanceof z.ZodObject ? Object.keys(d.schema.shape) : [];
  return ['name', ...keys].join(', ');
}

/**
 * `{ name, ...ranges }` checked against the named space's schema. Issues keep their key path (an
 * unknown key is named, with the valid ones of that space), so an error reads
 * `space.blocks.max: ...` wherever this schema is nested.
 */
export const spaceSchema: z.ZodType<SpaceConfig> = z
  .looseObject({ name: z.string() })
  .transform((section, ctx): SpaceConfig => {
    const { name, ...ranges } = section;
    if (!spaceNames().includes(name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: `unknown search space '${name}' (known: ${spaceNames().join(', ')})`,
      });
      return z.NEVER;
    }
    const d = spaceByName(name);
    const r = d.schema.safeParse(ranges);
    if (r.success) return { name, ...(r.data as object) };
    for (const iss of r.error.issues) {
      if (iss.code === 'unrecognized_keys')
        for (const key of iss.keys)
          ctx.addIssue({
            code: 'custom',
            path: [...iss.path, key],
            message: `unknown key of space '${name}' (valid keys: ${validKeys(d)})`,
          });
      else ctx.addIssue({ code: 'custom', path: iss.path, message: iss.message });
    }
    return z.NEVER;
  });

/** A space bound to its parsed ranges: what a search draws from, mutates and builds. */
export interface SearchSpace {
  readonly name: string;
  /** The parsed section (ranges with defaults), fit for a resolved config file. */
  readonly config: SpaceConfig;
  /** Number of distinct candidates. */
  readonly size: number;
  sample(rng: Rng): Candidate;
  /** `c` with one gene changed; `c` must be a point of this space. */
  mutate(c: Candidate, rng: Rng): Candidate;
  key(c: Candidate): string;
  build(c: Candidate, ctx: BuildContext): tfl.LayersModel;
  /** Feature taps of the built model; undefined when the space declares none. */
  taps(c: Candidate): ModelTaps | undefined;
  /** `json` as a candidate of this space; throws naming the key or gene that is wrong. */
  candidate(json: unknown): Candidate;
  /** Whether `c` is a well-formed point of this space. */
  contains(c: Candidate): boolean;
}

/**
 * Parses a space section (`where` names it in errors: 'search.yaml: space') and binds it to its
 * space. Throws naming the key for bad ranges, unknown keys and unknown space names.
 */
export function searchSpace(section: unknown, where = 'space'): SearchSpace {
  const config = parseOrThrow(spaceSchema, section, where);
  const { name, ...ranges } = config;
  const d = spaceByName(name);
  const shaped = (json: unknown): Candidate =>
    parseOrThrow(d.candidate, json, `${where} '${d.name}': candidate`) as Candidate;
  const inSpace = (json: unknown): Candidate => {
    const c = shaped(json);
    const why = d.outside(ranges, c);
    if (why !== undefined)
      throw new RetortError(`${where} '${d.name}': candidate ${d.key(c)} is outside the space: ${why}`);
    return c;
  };
  return {
    name: d.name,
    config,
    size: d.size(ranges),
    sample: (rng) => d.sample(ranges, rng) as Candidate,
    mutate: (c, rng) => d.mutate(ranges, inSpace(c), rng) as Candidate,
    key: (c) => d.key(shaped(c)),
    build: (c, ctx) => d.build(shaped(c), ctx),
    taps: (c) => d.taps?.(shaped(c)),
    candidate: inSpace,
    contains: (c) => d.candidate.safeParse(c).success && d.outside(ranges, c) === undefined,
  };
}
