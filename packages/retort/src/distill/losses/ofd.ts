/**
 * OFD: Heo, Kim, Yun, Park, Kwak and Choi, "A Comprehensive Overhaul of Feature Distillation",
 * ICCV 2019. Distils pre-ReLU features (so the teacher's negative responses, which ReLU would erase,
 * still carry information) through a connector (1x1 conv + BN) on the student, with:
 * - a margin ReLU on the teacher: t' = max(t, margin_c), margin_c = E[x | x < 0] for the channel's
 *   pre-ReLU distribution x ~ N(m_c, s_c^2) (the paper computes m, s from the teacher's BN beta and
 *   gamma; here they are the batch mean and standard deviation of the teacher's pre-ReLU feature on
 *   the first batch, the quantities BN's beta and gamma stand for), or -3 s_c when P(x < 0) <= 0.001;
 * - a partial L2: (s - t')^2 only where s > t' or t' > 0 (a student already below a negative
 *   teacher response is not pushed up);
 * summed per stage with weight 1 / 2^(n - 1 - i), divided by the batch size and by 1000 (the
 * official training script's scaling).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { type ConnectorWeights, connectorWeights, makeConnector } from './ab.js';
import { STAGES, type Stage } from './at.js';
import { checkMaps, conv1x1Bn, positive } from './feature-ops.js';
import { partWeight, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const ofdSchema = z.strictObject({});
export type OfdConfig = z.output<typeof ofdSchema>;

/** erfc with fractional error < 1.2e-7 (Numerical Recipes' Chebyshev fit). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}
const normalCdf = (x: number) => 0.5 * erfc(-x / Math.SQRT2);

/** Per channel E[x | x < 0] for x ~ N(mean, std^2), or -3 std when P(x < 0) <= 0.001. */
export function ofdMargin(std: ArrayLike<number>, mean: ArrayLike<number>): Float32Array {
  const out = new Float32Array(std.length);
  for (let c = 0; c < std.length; c++) {
    const s = Math.abs(std[c]!);
    const m = mean[c]!;
    const cdf = normalCdf(-m / s);
    out[c] = cdf > 0.001 ? (-s * Math.exp(-((m / s) ** 2) / 2)) / Math.sqrt(2 * Math.PI) / cdf + m : -3 * s;
  }
  return out;
}

/** The OFD loss over stage pairs with given margins [Ct] per stage. */
export function ofdLoss(
  students: readonly tf.Tensor4D[],
  teachers: readonly tf.Tensor4D[],
  connectors: readonly ConnectorWeights[],
  margins: readonly tf.Tensor1D[],
): tf.Scalar {
  const n = students.length;
  if (teachers.length !== n || connectors.length !== n || margins.length !== n || n === 0)
    throw new Error(
      'ofdLoss: expected matching numbers of student maps, teacher maps, connectors and margins',
    );
  checkMaps('ofdLoss', [...students, ...teachers]);
  const batch = students[0]!.shape[0];
  return tf.tidy(() => {
    const terms = students.map((x, i) => {
      const s = conv1x1Bn(x, connectors[i]!.kernel, connectors[i]!.gamma, connectors[i]!.beta);
      const t = tf.maximum(detach(teachers[i]!), margins[i]!);
      if (s.shape.some((d, k) => d !== t.shape[k]))
        throw new Error(
          `ofdLoss: stage ${i}: connector output [${s.shape.join(', ')}] vs teacher [${t.shape.join(', ')}]`,
        );
      const a = positive(tf.sub(s, t));
      const b = positive(t);
      const mask = tf.sub(tf.add(a, b), tf.mul(a, b));
      return tf.div(tf.sum(tf.mul(tf.squaredDifference(s, t), mask)), 2 ** (n - 1 - i));
    });
    return tf.div(
      terms.reduce((p, q) => tf.add(p, q)),
      batch * 1000,
    ) as tf.Scalar;
  });
}

export type OfdParts = Readonly<Record<Stage, LayersModel>> & { readonly margins: LayersModel };

export const ofd: LossDescriptor<OfdConfig, Stage, OfdParts> = {
  name: 'ofd',
  paper: {
    title: 'A Comprehensive Overhaul of Feature Distillation',
    authors: 'Byeongho Heo, Jeesoo Kim, Sangdoo Yun, Hyojin Park, Nojun Kwak, Jin Young Choi',
    venue: 'ICCV',
    year: 2019,
  },
  schema: ofdSchema,
  needs: { taps: { student: STAGES, teacher: STAGES } },
  parts: (shapes: TapShapes<Stage>) => {
    const conn = (r: Stage) =>
      makeConnector(`ofd_${r}`, shapes.student[r].at(-1)!, shapes.teacher[r].at(-1)!);
    return {
      stage1: conn('stage1'),
      stage2: conn('stage2'),
      stage3: conn('stage3'),
      // Margins per stage, estimated on the first batch ('set' = 0 until then); checkpointed.
      margins: weightPart('ofd_margins', [
        ...STAGES.map((r) => ({
          name: r,
          shape: [shapes.teacher[r].at(-1)!],
          init: initializers.zeros(),
          trainable: false,
        })),
        { name: 'set', shape: [1], init: initializers.zeros(), trainable: false },
      ]),
    };
  },
  loss: (ctx) => {
    const teachers = STAGES.map((r) => ctx.teacher.features[r] as tf.Tensor4D);
    const set = partWeight(ctx.parts.margins, 'set');
    if (set.dataSync()[0] === 0) {
      STAGES.forEach((r, i) => {
        const { mean, variance } = tf.moments(teachers[i]!, [0, 1, 2]);
        const m = ofdMargin(tf.sqrt(variance).dataSync(), mean.dataSync());
        const mt = tf.tensor1d(m);
        partWeight(ctx.parts.margins, r).assign(mt);
        tf.dispose([mean, variance, mt]);
      });
      const one = tf.ones([1]);
      set.assign(one);
      one.dispose();
    }
    return ofdLoss(
      STAGES.map((r) => ctx.student.features[r] as tf.Tensor4D),
      teachers,
      STAGES.map((r) => connectorWeights(ctx.parts[r])),
      STAGES.map((r) => partWeight(ctx.parts.margins, r) as tf.Tensor1D),
    );
  },
};
