/**
 * CC: Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019. Besides each
 * example's own knowledge, the correlation between examples is transferred. Implemented as in
 * RepDistiller (the reference its table comes from): both sides' pooled features pass through
 * trainable linear embeddings (feat_dim 128), and with delta = |e_s - e_t| the loss is
 * mean_i sum_k delta[i, k] * delta[i + 1, k] over consecutive examples of the batch — a cheap
 * surrogate of the paper's kernel correlation matrices. RepDistiller's beta is 0.02.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { checkBatch, flattenRows } from './feature-ops.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const ccSchema = z.strictObject({
  /** Width of the embeddings (RepDistiller's feat_dim). */
  featDim: z.number().int().positive().default(128),
});
export type CcConfig = z.output<typeof ccSchema>;

/** Weights of one linear embedding: kernel [in, featDim], bias [featDim]. */
export interface LinearWeights {
  kernel: tf.Tensor2D;
  bias: tf.Tensor1D;
}

/** mean_i sum_k |e_s - e_t|[i, k] * |e_s - e_t|[i + 1, k] with e = x W + b per side. */
export function ccLoss(
  student: tf.Tensor,
  teacher: tf.Tensor,
  embedS: LinearWeights,
  embedT: LinearWeights,
): tf.Scalar {
  checkBatch('ccLoss', student, teacher, 2);
  return tf.tidy(() => {
    const s = flattenRows(student);
    const t = flattenRows(detach(teacher));
    if (s.shape[1] !== embedS.kernel.shape[0] || t.shape[1] !== embedT.kernel.shape[0])
      throw new Error(
        `ccLoss: embeddings take ${embedS.kernel.shape[0]} (student) and ${embedT.kernel.shape[0]} (teacher) features, got ${s.shape[1]} and ${t.shape[1]}`,
      );
    const es = tf.add(tf.matMul(s, embedS.kernel), embedS.bias);
    const et = tf.add(tf.matMul(t, embedT.kernel), embedT.bias);
    const delta = tf.abs(tf.sub(es, et));
    const n = delta.shape[0]!;
    const prod = tf.mul(tf.slice(delta, [0, 0], [n - 1, -1]), tf.slice(delta, [1, 0], [n - 1, -1]));
    return tf.mean(tf.sum(prod, 1)) as tf.Scalar;
  });
}

/** A linear embedding as a one-layer model, initialised like PyTorch's nn.Linear. */
export function linearEmbed(name: string, inDim: number, outDim: number): tfl.LayersModel {
  const bound = 1 / Math.sqrt(inDim);
  return tfl.sequential({
    name,
    layers: [
      tfl.layers.dense({
        name: `${name}.linear`,
        inputShape: [inDim],
        units: outDim,
        kernelInitializer: tfl.initializers.randomUniform({ minval: -bound, maxval: bound }),
        biasInitializer: tfl.initializers.randomUniform({ minval: -bound, maxval: bound }),
      }),
    ],
  });
}

/** The live kernel and bias of a model made by linearEmbed. */
export function linearWeights(model: tfl.LayersModel): LinearWeights {
  const [kernel, bias] = model.layers[0]!.getWeights() as [tf.Tensor2D, tf.Tensor1D];
  return { kernel, bias };
}

const width = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export type CcParts = { readonly embedS: tfl.LayersModel; readonly embedT: tfl.LayersModel };

export const cc: LossDescriptor<CcConfig, 'feat', CcParts> = {
  name: 'cc',
  paper: {
    title: 'Correlation Congruence for Knowledge Distillation',
    authors:
      'Baoyun Peng, Xiao Jin, Jiaheng Liu, Shunfeng Zhou, Yichao Wu, Yu Liu, Dongsheng Li, Zhaoning Zhang',
    venue: 'ICCV',
    year: 2019,
  },
  schema: ccSchema,
  needs: { taps: { student: ['feat'], teacher: ['feat'] } },
  parts: (shapes: TapShapes<'feat'>, cfg) => ({
    embedS: linearEmbed('cc_embed_s', width(shapes.student.feat), cfg.featDim),
    embedT: linearEmbed('cc_embed_t', width(shapes.teacher.feat), cfg.featDim),
  }),
  loss: (ctx) =>
    ccLoss(
      ctx.student.features.feat,
      ctx.teacher.features.feat,
      linearWeights(ctx.parts.embedS),
      linearWeights(ctx.parts.embedT),
    ),
};
