/**
 * Search space over plain CNNs (models/plain-cnn.ts: stages of conv3x3-BN-ReLU, a 2x2 max pool
 * between stages, global average pool, Linear; the VGG pattern of Simonyan & Zisserman, ICLR 2015).
 * The stage layout is fixed (`stages` of them, so the pools sit in fixed places); what varies is the
 * number of conv layers in each stage and each layer's channels, chosen from one list. Without
 * shortcuts every width is free, so this is the space with the most distinct small students.
 *
 * Candidate: `{ channels: [[16, 24], [32], [64, 64]] }` (one list per stage, one number per layer),
 * key `plain-cnn-c16.24_32_64.64`. Its genes are each stage's depth and each layer's channels; a
 * deeper stage gets new layers drawn from the channel choices, a shallower one loses its last ones.
 */
import { z } from 'zod';
import { plainCnn, plainCnnTaps } from '../../models/plain-cnn.js';
import type { Rng } from '../../util/rng.js';
import { choiceList, intRange, intsBetween, joinKey, pick, pickOther } from './genes.js';
import type { SpaceDescriptor } from './types.js';

export const plainCnnSpaceSchema = z.strictObject({
  /** Stages (a 2x2 max pool between two): the input must be at least 2^(stages - 1) pixels. */
  stages: z.int().min(1).max(6).default(3),
  /** Conv layers per stage. */
  layers: intRange({ min: 1, max: 3 }, 1),
  /** Output channels a layer may have. */
  channels: choiceList([8, 16, 24, 32, 48, 64], z.int().min(1)),
});
export type PlainCnnSpace = z.output<typeof plainCnnSpaceSchema>;

export const plainCnnCandidateSchema = z.strictObject({
  channels: z.array(z.array(z.int().min(1)).min(1)).min(1),
});
export type PlainCnnCandidate = z.output<typeof plainCnnCandidateSchema>;

function drawLayers(space: PlainCnnSpace, n: number, rng: Rng): number[] {
  return Array.from({ length: n }, () => pick(rng, space.channels));
}

/** One gene of a plain-CNN candidate: a stage's depth, or one layer's channels. */
type PlainGene = { stage: number; layer?: number };

export const plainCnnSpace: SpaceDescriptor<PlainCnnSpace, PlainCnnCandidate> = {
  name: 'plain-cnn',
  description:
    'Plain CNN: conv3x3-BN-ReLU layers and channels per stage, 2x2 max pools between stages (VGG pattern, ICLR 2015)',
  schema: plainCnnSpaceSchema,
  candidate: plainCnnCandidateSchema,
  size(space) {
    const perStage = intsBetween(space.layers).reduce((n, d) => n + space.channels.length ** d, 0);
    return perStage ** space.stages;
  },
  outside(space, c) {
    if (c.channels.length !== space.stages)
      return `channels has ${c.channels.length} stages, the space ${space.stages}`;
    for (const [s, layers] of c.channels.entries()) {
      if (layers.length < space.layers.min || layers.length > space.layers.max)
        return `channels[${s}] has ${layers.length} layers, not ${space.layers.min}..${space.layers.max}`;
      for (const [l, ch] of layers.entries())
        if (!space.channels.includes(ch))
          return `channels[${s}][${l}] = ${ch} is not one of ${space.channels.join(', ')}`;
    }
    return undefined;
  },
  sample(space, rng) {
    const depths = intsBetween(space.layers);
    return {
      channels: Array.from({ length: space.stages }, () => drawLayers(space, pick(rng, depths), rng)),
    };
  },
  mutate(space, c, rng) {
    const channels = c.channels.map((layers) => [...layers]);
    const genes: PlainGene[] = [];
    for (const [stage, layers] of channels.entries()) {
      if (space.layers.max > space.layers.min) genes.push({ stage });
      if (space.channels.length > 1) for (const layer of layers.keys()) genes.push({ stage, layer });
    }
    if (genes.length === 0) return { channels };
    const g = pick(rng, genes);
    const layers = channels[g.stage]!;
    if (g.layer !== undefined) layers[g.layer] = pickOther(rng, space.channels, layers[g.layer]!);
    else {
      const d = pickOther(rng, intsBetween(space.layers), layers.length);
      channels[g.stage] =
        d < layers.length ? layers.slice(0, d) : [...layers, ...drawLayers(space, d - layers.length, rng)];
    }
    return { channels };
  },
  key: (c) => `plain-cnn-c${c.channels.map(joinKey).join('_')}`,
  build(c, ctx) {
    return plainCnn({
      stages: c.channels,
      inputShape: ctx.inputShape,
      numClasses: ctx.numClasses,
      name: ctx.name ?? plainCnnSpace.key(c),
      ...(ctx.seed === undefined ? {} : { seed: ctx.seed }),
    });
  },
  taps: (c) => plainCnnTaps(c.channels),
};
