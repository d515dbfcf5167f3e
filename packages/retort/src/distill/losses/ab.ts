/**
 * AB: Heo, Lee, Yun and Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed
 * by Hidden Neurons", AAAI 2019. The student learns where the teacher's neurons switch on: on the
 * pre-ReLU maps of each stage, a hinge-like squared loss with margin m pushes the student's
 * (connected) response above +m where the teacher neuron is active (t > 0) and below -m where it is
 * not:
 *   sum((s + m)^2 [s > -m, t <= 0] + (s - m)^2 [s <= m, t > 0]),
 * per stage weighted 2^(i - n + 1) (the deepest stage 1), divided by the batch size and scaled by
 * 3 / 1000, as RepDistiller's ABLoss. The connector is RepDistiller's Connector: none where the
 * student and teacher maps have the same shape, else ConvReg without its ReLU (conv by spatial
 * sizes + batch-statistics BN; for equal sizes the authors' 1x1 conv + BN, plus a bias that BN
 * cancels). `connector: always` puts one on every stage, as the authors' code does.
 * RepDistiller trains AB as an initialisation stage (unweighted; its -b 1 never applies), then the
 * student on CE alone (-a 0); see configs/.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { checkMaps, positive } from './feature-ops.js';
import { type ConvRegWeights, convReg, convRegWeights, makeConvReg } from './fitnet.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const abSchema = z.strictObject({
  /** The activation-boundary margin m. */
  margin: z.number().positive().default(1),
  /** 'auto': no connector where the student and teacher maps match (RepDistiller); 'always': one per stage. */
  connector: z.enum(['auto', 'always']).default('auto'),
});
export type AbConfig = z.output<typeof abSchema>;

const same = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The AB loss over stage pairs: student and teacher pre-ReLU maps [N, H, W, C], and per stage a
 * ConvReg connector (no ReLU) from the student's map to the teacher's, or null where the maps
 * already match.
 */
export function abLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  connectors: readonly (ConvRegWeights | null)[],
  cfg: Pick<AbConfig, 'margin'>,
): tf.Scalar {
  const n = students.length;
  if (teachers.length !== n || connectors.length !== n || n === 0)
    throw new Error(
      `abLoss: expected matching numbers (>= 1) of student maps, teacher maps and connectors, got ${n}, ${teachers.length} and ${connectors.length}`,
    );
  checkMaps('abLoss', [...students, ...teachers]);
  students.forEach((s, i) => {
    const t = teachers[i]!;
    if (connectors[i] === null && !same(s.shape, t.shape))
      throw new Error(
        `abLoss: stage ${i + 1} has no connector, so the student map [${s.shape.join(', ')}] must match the teacher map [${t.shape.join(', ')}]`,
      );
  });
  const m = cfg.margin;
  return tf.tidy(() => {
    const terms = students.map((x, i) => {
      const t = detach(teachers[i]!);
      const c = connectors[i];
      const s = c ? convReg(x, c, [t.shape[1], t.shape[2]], false) : x;
      const on = positive(t);
      const below = tf.mul(tf.square(tf.add(s, m)), tf.mul(positive(tf.add(s, m)), tf.sub(1, on)));
      const above = tf.mul(tf.square(tf.sub(s, m)), tf.mul(tf.sub(1, positive(tf.sub(s, m))), on));
      return tf.mul(tf.sum(tf.add(below, above)), 2 ** (i - n + 1));
    });
    return tf.mul(
      terms.reduce((a, b) => tf.add(a, b)),
      3 / 1000 / students[0]!.shape[0],
    ) as tf.Scalar;
  });
}

/** Connectors by stage; a stage without one has none to train. */
export type AbParts = Readonly<Partial<Record<Stage, LayersModel>>>;

/** One ConvReg connector (no ReLU) per stage whose tapped shapes differ, or per stage with 'always'. */
export function abConnectors(shapes: TapShapes<Stage>, config: Pick<AbConfig, 'connector'>): AbParts {
  const out: Partial<Record<Stage, LayersModel>> = {};
  for (const r of STAGES) {
    const s = shapes.student[r];
    const t = shapes.teacher[r];
    if (config.connector === 'auto' && same(s, t)) continue;
    out[r] = makeConvReg(`ab_${r}`, s, t, `ab (${r})`);
  }
  return out;
}

export const ab: LossDescriptor<AbConfig, Stage, AbParts> = {
  name: 'ab',
  paper: {
    title: 'Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons',
    authors: 'Byeongho Heo, Minsik Lee, Sangdoo Yun, Jin Young Choi',
    venue: 'AAAI',
    year: 2019,
  },
  schema: abSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  parts: (shapes, config) => abConnectors(shapes, config),
  loss: (ctx) =>
    abLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      STAGES.map((r) => {
        const part = ctx.parts[r];
        return part ? convRegWeights(part) : null;
      }),
      ctx.config,
    ),
};
