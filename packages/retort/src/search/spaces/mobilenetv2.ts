/**
 * Search space over CIFAR MobileNetV2 (models/mobilenetv2.ts; Sandler, Howard, Zhu, Zhmoginov &
 * Chen, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018): one width multiplier,
 * and per stage 1-6 the expansion ratio, the depthwise kernel (3 or 5) and the number of blocks.
 * Choosing these per stage is the factorized space of MnasNet (Tan et al., "MnasNet: Platform-Aware
 * Neural Architecture Search for Mobile", CVPR 2019); the expansion choices 3/4/6 are those of
 * Once-for-All (Cai, Gan, Wang, Zhang & Han, ICLR 2020). Stage 0 stays fixed (t = 1, 3x3, one
 * block), as the first block does in both. RepDistiller's mobile_half (width 0.5, expansion 6, 3x3,
 * blocks 2-3-4-3-3-1) is a point of the default space.
 *
 * Candidate: `{ widthMult, expansion: [6], kernel: [6], depth: [6] }` (lists over stages 1-6), key
 * `mobilenetv2-w0.5-e6-k3-d2.3.4.3.3.1`: a list whose six values are equal is written once.
 */
import { z } from 'zod';
import { mobileNetV2, mobileNetV2Taps } from '../../models/mobilenetv2.js';
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

/** Stages 1-6, the ones whose settings vary. */
const STAGES = 6;

export const mobileNetV2SpaceSchema = z.strictObject({
  /** Channel multipliers; int(16 * widthMult) >= 1 keeps stage 0 non-empty. */
  widthMult: choiceList(
    [0.5, 0.75, 1],
    z
      .number()
      .finite()
      .refine((w) => Math.trunc(16 * w) >= 1, 'widthMult must have int(16 * widthMult) >= 1'),
  ),
  /** Expansion ratios of the inverted residual blocks. */
  expansion: choiceList([3, 4, 6], z.int().min(1)),
  /** Depthwise kernel sizes: 3 or 5 (odd, so that padding k // 2 keeps the map size). */
  kernel: choiceList(
    [3, 5],
    z.int().refine((k) => k === 3 || k === 5, 'kernel must be 3 or 5'),
  ),
  /** Blocks per stage. */
  depth: intRange({ min: 1, max: 4 }, 1),
});
export type MobileNetV2Space = z.output<typeof mobileNetV2SpaceSchema>;

const perStage = (item: z.ZodType<number>) => z.array(item).length(STAGES);
export const mobileNetV2CandidateSchema = z.strictObject({
  widthMult: z.number().positive().finite(),
  expansion: perStage(z.int().min(1)),
  kernel: perStage(
    z
      .int()
      .min(1)
      .refine((k) => k % 2 === 1, 'kernel must be odd'),
  ),
  depth: perStage(z.int().min(1)),
});
export type MobileNetV2Candidate = z.output<typeof mobileNetV2CandidateSchema>;

function genes(space: MobileNetV2Space): Gene[] {
  const depth = intsBetween(space.depth);
  const stages = (key: string, choices: readonly number[]): Gene[] =>
    Array.from({ length: STAGES }, (_, index) => ({ key, index, choices }));
  return [
    { key: 'widthMult', choices: space.widthMult },
    ...stages('expansion', space.expansion),
    ...stages('kernel', space.kernel),
    ...stages('depth', depth),
  ];
}

/** '6' for six equal values, else '2.3.4.3.3.1': short keys for the common uniform settings. */
function stageKey(xs: readonly number[]): string {
  return xs.every((x) => x === xs[0]) ? String(xs[0]) : joinKey(xs);
}

export const mobileNetV2Space: SpaceDescriptor<MobileNetV2Space, MobileNetV2Candidate> = {
  name: 'mobilenetv2',
  description:
    'CIFAR MobileNetV2: width multiplier; expansion, kernel 3/5 and blocks per stage (Sandler et al., CVPR 2018)',
  schema: mobileNetV2SpaceSchema,
  candidate: mobileNetV2CandidateSchema,
  size: (space) => genesSize(genes(space)),
  outside: (space, c) => genesOutside(genes(space), c),
  sample: (space, rng) => mobileNetV2CandidateSchema.parse(sampleGenes(genes(space), rng)),
  mutate: (space, c, rng) => mobileNetV2CandidateSchema.parse(mutateGenes(genes(space), c, rng)),
  key: (c) =>
    `mobilenetv2-w${c.widthMult}-e${stageKey(c.expansion)}-k${stageKey(c.kernel)}-d${stageKey(c.depth)}`,
  build(c, ctx) {
    return mobileNetV2({
      widthMult: c.widthMult,
      expansion: c.expansion,
      kernel: c.kernel,
      depths: c.depth,
      inputShape: ctx.inputShape,
      numClasses: ctx.numClasses,
      name: ctx.name ?? mobileNetV2Space.key(c),
      ...(ctx.seed === undefined ? {} : { seed: ctx.seed }),
    });
  },
  taps: (c) => mobileNetV2Taps(c.depth),
};
