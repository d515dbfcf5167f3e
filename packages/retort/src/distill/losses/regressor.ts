/**
 * Regressor + MSE from the PyTorch tutorial "Knowledge Distillation Tutorial" (A. Chariton,
 * pytorch.org/tutorials/beginner/knowledge_distillation_tutorial, 2023), itself after FitNets'
 * hint training (Romero et al., ICLR 2015): a trainable convolution maps the student's feature map
 * to the teacher's channel count and MSE pulls it onto the teacher's map. The convolution is a part
 * the trainer updates with the student and discards afterwards.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const regressorSchema = z.strictObject({
  /** Side of the square 'same' convolution (the tutorial's 3). */
  kernelSize: z
    .number()
    .int()
    .positive()
    .refine((k) => k % 2 === 1, 'must be odd, so that "same" padding is symmetric as in PyTorch')
    .default(3),
});
export type RegressorConfig = z.output<typeof regressorSchema>;

/** The regressor's weights: kernel [k, k, Cs, Ct] (HWIO), bias [Ct]. */
export interface RegressorWeights {
  kernel: tf.Tensor4D;
  bias: tf.Tensor1D;
}

/**
 * mean((conv_same(student, kernel) + bias - teacher)^2) over all elements.
 * student: [N, H, W, Cs]; teacher: [N, H, W, Ct]. Gradients flow to the student and the weights,
 * not to the teacher.
 */
export function regressorLoss(student: tf.Tensor, teacher: tf.Tensor, weights: RegressorWeights): tf.Scalar {
  const s = student.shape;
  const t = teacher.shape;
  const w = weights.kernel.shape;
  const ok =
    s.length === 4 &&
    t.length === 4 &&
    s[0] === t[0] &&
    s[1] === t[1] &&
    s[2] === t[2] &&
    w[0] === w[1] &&
    w[0] % 2 === 1 &&
    w[2] === s[3] &&
    w[3] === t[3] &&
    weights.bias.shape[0] === t[3];
  if (!ok) {
    throw new Error(
      `regressorLoss: expected student [N, H, W, Cs], teacher [N, H, W, Ct], kernel [k, k, Cs, Ct] ` +
        `(k odd) and bias [Ct], got student [${s.join(', ')}], teacher [${t.join(', ')}], ` +
        `kernel [${w.join(', ')}], bias [${weights.bias.shape.join(', ')}]`,
    );
  }
  return tf.tidy(() => {
    const y = tf.add(tf.conv2d(student as tf.Tensor4D, weights.kernel, 1, 'same'), weights.bias);
    return tf.mean(tf.squaredDifference(y, detach(teacher))) as tf.Scalar;
  });
}

const LAYER = 'regressor_conv';

/**
 * The regressor as a one-layer model over a [H, W, Cs] student map, initialised like PyTorch's
 * Conv2d (kernel and bias uniform in +-1/sqrt(fan_in)) so runs start where the tutorial's do.
 */
export function makeRegressor(shapes: TapShapes<'hint'>, config: RegressorConfig): tfl.LayersModel {
  const s = shapes.student.hint;
  const t = shapes.teacher.hint;
  if (s.length !== 3 || t.length !== 3 || s[0] !== t[0] || s[1] !== t[1]) {
    throw new Error(
      `regressor: the 'hint' taps must be feature maps [H, W, C] of one spatial size, got student ` +
        `[${s.join(', ')}] and teacher [${t.join(', ')}]`,
    );
  }
  const [h, w, cs] = s as [number, number, number];
  const k = config.kernelSize;
  const bound = 1 / Math.sqrt(cs * k * k);
  return tfl.sequential({
    name: 'regressor',
    layers: [
      tfl.layers.conv2d({
        name: LAYER,
        inputShape: [h, w, cs],
        filters: t[2]!,
        kernelSize: k,
        padding: 'same',
        // varianceScaling(1/3, fanIn, uniform) draws from +-sqrt(3 * (1/3) / fan_in).
        kernelInitializer: tfl.initializers.varianceScaling({
          scale: 1 / 3,
          mode: 'fanIn',
          distribution: 'uniform',
        }),
        biasInitializer: tfl.initializers.randomUniform({ minval: -bound, maxval: bound }),
      }),
    ],
  });
}

/** The live kernel and bias variables of a model made by makeRegressor. */
export function regressorWeights(model: tfl.LayersModel): {
  kernel: tf.Variable<tf.Rank.R4>;
  bias: tf.Variable<tf.Rank.R1>;
} {
  const [kernel, bias] = model.getLayer(LAYER).getWeights();
  if (
    !(kernel instanceof tf.Variable && bias instanceof tf.Variable) ||
    kernel.rank !== 4 ||
    bias.rank !== 1
  ) {
    throw new Error(`regressor: model '${model.name}' has no conv kernel and bias in layer '${LAYER}'`);
  }
  return { kernel: kernel as tf.Variable<tf.Rank.R4>, bias: bias as tf.Variable<tf.Rank.R1> };
}

/** A type literal, not an interface, so that it fits Parts' string index. */
export type RegressorParts = { readonly regressor: tfl.LayersModel };

export const regressor: LossDescriptor<RegressorConfig, 'hint', RegressorParts> = {
  name: 'regressor',
  paper: {
    title: 'Knowledge Distillation Tutorial (convolutional regressor with MSE on feature maps)',
    authors: 'Alexandros Chariton',
    venue: 'PyTorch Tutorials',
    year: 2023,
  },
  schema: regressorSchema,
  needs: { taps: { student: ['hint'], teacher: ['hint'] } },
  parts: (shapes, config) => ({ regressor: makeRegressor(shapes, config) }),
  loss: (ctx) =>
    regressorLoss(
      ctx.student.features.hint,
      ctx.teacher.features.hint,
      regressorWeights(ctx.parts.regressor),
    ),
};
