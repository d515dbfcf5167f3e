/**
 * Search space over CIFAR ResNets (models/resnet.ts; He, Zhang, Ren & Sun, "Deep Residual Learning
 * for Image Recognition", CVPR 2016): basic blocks per stage and one width multiplier over the
 * widths [16, 16, 32, 64]. Depth and width per stage are the two axes along which the students of
 * the distillation literature differ (ResNet-8 ... ResNet-110, resnet8x4), so the default space
 * holds ResNet-8 (blocks 1, 1, 1) and ResNet-20 (3, 3, 3) at width 1, the zoo's models exactly.
 *
 * Candidate: `{ blocks: [b1, b2, b3], widthMult }`, key `resnet-b1.2.1-w0.75`.
 */
import { z } from 'zod';
import { resnet, resnetDepth, resnetTaps } from '../../models/resnet.js';
import {
  choiceList,
  type Gene,
  genesOutside,
  genesSize,
  intRange,
  intsBetween,
  joinKey,
  mutateGenes,
  sampleGenes,
} from './genes.js';
import type { SpaceDescriptor } from './types.js';

const BASE_WIDTHS = [16, 16, 32, 64] as const;

export const resnetSpaceSchema = z.strictObject({
  /** Basic blocks in each of the three stages. */
  blocks: intRange({ min: 1, max: 4 }, 1),
  /** Multipliers of the widths [16, 16, 32, 64]. */
  widthMult: choiceList([0.5, 0.75, 1, 1.25, 1.5], z.number().positive().finite()),
});
export type ResnetSpace = z.output<typeof resnetSpaceSchema>;

export const resnetCandidateSchema = z.strictObject({
  blocks: z.tuple([z.int().min(1), z.int().min(1), z.int().min(1)]),
  widthMult: z.number().positive().finite(),
});
export type ResnetCandidate = z.output<typeof resnetCandidateSchema>;

function genes(space: ResnetSpace): Gene[] {
  const blocks = intsBetween(space.blocks);
  return [0, 1, 2]
    .map((index): Gene => ({ key: 'blocks', index, choices: blocks }))
    .concat({ key: 'widthMult', choices: space.widthMult });
}

/**
 * Stage widths for a multiplier, rounded to a multiple of 4 and at least 4, as MobileNet's width
 * multiplier rounds to a multiple of 8 (Sandler et al., CVPR 2018): nearby multipliers share a
 * width instead of giving models one channel apart, and no stage is too thin to carry anything.
 */
export function resnetWidths(widthMult: number): [number, number, number, number] {
  const w = BASE_WIDTHS.map((c) => Math.max(4, Math.round((c * widthMult) / 4) * 4));
  return [w[0]!, w[1]!, w[2]!, w[3]!];
}

export const resnetSpace: SpaceDescriptor<ResnetSpace, ResnetCandidate> = {
  name: 'resnet',
  description:
    'CIFAR ResNet: blocks per stage (3 stages) and a width multiplier over 16-16-32-64 (He et al., CVPR 2016)',
  schema: resnetSpaceSchema,
  candidate: resnetCandidateSchema,
  size: (space) => genesSize(genes(space)),
  outside: (space, c) => genesOutside(genes(space), c),
  sample: (space, rng) => resnetCandidateSchema.parse(sampleGenes(genes(space), rng)),
  mutate: (space, c, rng) => resnetCandidateSchema.parse(mutateGenes(genes(space), c, rng)),
  key: (c) => `resnet-b${joinKey(c.blocks)}-w${c.widthMult}`,
  build(c, ctx) {
    return resnet(resnetDepth(c.blocks), {
      blocks: c.blocks,
      widths: resnetWidths(c.widthMult),
      inputShape: ctx.inputShape,
      numClasses: ctx.numClasses,
      name: ctx.name ?? resnetSpace.key(c),
      ...(ctx.seed === undefined ? {} : { seed: ctx.seed }),
    });
  },
  taps: (c) => resnetTaps(resnetDepth(c.blocks), c.blocks),
};
