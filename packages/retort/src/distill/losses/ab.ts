/**
 * AB: Heo, Lee, Yun and Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed
 * by Hidden Neurons", AAAI 2019. The student learns where the teacher's neurons switch on: with a
 * connector (1x1 conv + BN) from the student's pre-ReLU map to the teacher's channels, a hinge-like
 * squared loss with margin m pushes a connector output above +m where the teacher neuron is active
 * (t > 0) and below -m where it is not:
 *   sum((s + m)^2 [s > -m, t <= 0] + (s - m)^2 [s <= m, t > 0]),
 * per stage weighted 2^(i - n + 1) (the deepest stage 1), divided by the batch size and scaled by
 * 3 / 1000 as RepDistiller. Used as an initialisation stage (RepDistiller's beta 1 there), then CE.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { STAGES, type Stage } from './at.js';
import { checkMaps, conv1x1Bn, positive } from './feature-ops.js';
import { partWeight, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const abSchema = z.strictObject({
  /** The activation-boundary margin m. */
  margin: z.number().positive().default(1),
});
export type AbConfig = z.output<typeof abSchema>;

/** A 1x1 conv (no bias) + BN connector: kernel [1, 1, Cs, Ct], gamma and beta [Ct]. */
export interface ConnectorWeights {
  kernel: tf.Tensor4D;
  gamma: tf.Tensor1D;
  beta: tf.Tensor1D;
}

/** The AB loss over stage pairs (student pre-ReLU maps, teacher pre-ReLU maps). */
export function abLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  connectors: readonly ConnectorWeights[],
  cfg: AbConfig,
): tf.Scalar {
  const n = students.length;
  if (teachers.length !== n || connectors.length !== n || n === 0)
    throw new Error('abLoss: expected matching numbers of student maps, teacher maps and connectors');
  checkMaps('abLoss', [...students, ...teachers]);
  const m = cfg.margin;
  const batch = students[0]!.shape[0];
  return tf.tidy(() => {
    const terms = students.map((x, i) => {
      const s = conv1x1Bn(x, connectors[i]!.kernel, connectors[i]!.gamma, connectors[i]!.beta);
      const t = detach(teachers[i]!);
      if (s.shape.some((d, k) => d !== t.shape[k]))
        throw new Error(
          `abLoss: stage ${i}: connector output [${s.shape.join(', ')}] vs teacher [${t.shape.join(', ')}]`,
        );
      const on = positive(t);
      const off = tf.sub(1, on);
      const below = tf.mul(tf.square(tf.add(s, m)), tf.mul(positive(tf.add(s, m)), off));
      const above = tf.mul(tf.square(tf.sub(s, m)), tf.mul(tf.sub(1, positive(tf.sub(s, m))), on));
      return tf.mul(tf.sum(tf.add(below, above)), 2 ** (i - n + 1));
    });
    return tf.mul(
      terms.reduce((a, b) => tf.add(a, b)),
      3 / 1000 / batch,
    ) as tf.Scalar;
  });
}

/** A connector part for [H, W, Cs] -> [H, W, Ct], initialised as PyTorch (kaiming-uniform conv). */
export function makeConnector(name: string, cs: number, ct: number): LayersModel {
  const b = 1 / Math.sqrt(cs);
  return weightPart(name, [
    { name: 'kernel', shape: [1, 1, cs, ct], init: initializers.randomUniform({ minval: -b, maxval: b }) },
    { name: 'gamma', shape: [ct], init: initializers.ones() },
    { name: 'beta', shape: [ct], init: initializers.zeros() },
  ]);
}

export function connectorWeights(part: LayersModel): ConnectorWeights {
  return {
    kernel: partWeight(part, 'kernel') as tf.Tensor4D,
    gamma: partWeight(part, 'gamma') as tf.Tensor1D,
    beta: partWeight(part, 'beta') as tf.Tensor1D,
  };
}

export type StageConnectors = Readonly<Record<Stage, LayersModel>>;

/** One connector per stage, from the tapped channel counts. */
export function stageConnectors(prefix: string, shapes: TapShapes<Stage>): StageConnectors {
  const part = (r: Stage) =>
    makeConnector(`${prefix}_${r}`, shapes.student[r].at(-1)!, shapes.teacher[r].at(-1)!);
  return { stage1: part('stage1'), stage2: part('stage2'), stage3: part('stage3') };
}

export const ab: LossDescriptor<AbConfig, Stage, StageConnectors> = {
  name: 'ab',
  paper: {
    title: 'Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons',
    authors: 'Byeongho Heo, Minsik Lee, Sangdoo Yun, Jin Young Choi',
    venue: 'AAAI',
    year: 2019,
  },
  schema: abSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  parts: (shapes) => stageConnectors('ab', shapes),
  loss: (ctx) =>
    abLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D),
      STAGES.map((r) => connectorWeights(ctx.parts[r])),
      ctx.config,
    ),
};
