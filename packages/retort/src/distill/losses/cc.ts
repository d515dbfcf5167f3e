/**
 * CC: Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019. Besides each
 * example's own knowledge, the correlation between examples is transferred. The paper matches
 * kernel correlation matrices (a Taylor-expanded Gaussian RBF); this file implements the form of
 * RepDistiller's Correlation, which its author received from the paper's authors and which the
 * published comparisons (Tian et al., ICLR 2020) ran:
 *   e_s = flat(f_s) W_s + b_s,  e_t = flat(f_t) W_t + b_t   (trainable linear embeddings, d = 128)
 *   delta = |e_s - e_t|,  loss = 1 / (N - 1) * sum_{i < N-1} sum_k delta[i, k] * delta[i + 1, k]
 * that is, the congruence of consecutive examples' embedding differences. The teacher's features
 * are constants but its embedding W_t, b_t is trained by this loss, as in RepDistiller. Taps are
 * the pooled vectors (RepDistiller's feat[-1]); a map is flattened in NHWC order, which only
 * permutes the kernel's rows relative to PyTorch's. RepDistiller's beta is 0.02.
 *
 * `variant: gram` keeps the batch-correlation form this project first specified, beside the
 * upstream one: G = F F^T over the flattened features of each side, each divided by its Frobenius
 * norm, and sum((G_t/|G_t|_F - G_s/|G_s|_F)^2) / N^2; no trainable parts.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { checkBatch, flattenRows } from './feature-ops.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const ccSchema = z.strictObject({
  /** 'embedding': RepDistiller's form (trainable embeddings); 'gram': normalised batch Gram matrices. */
  variant: z.enum(['embedding', 'gram']).default('embedding'),
  /** Width of the embeddings (RepDistiller's feat_dim; the embedding variant only). */
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
  checkEmbeddings(student, teacher, embedS, embedT);
  return tf.tidy(() => {
    const s = flattenRows(student);
    const t = flattenRows(detach(teacher));
    const es = tf.add(tf.matMul(s, embedS.kernel), embedS.bias);
    const et = tf.add(tf.matMul(t, embedT.kernel), embedT.bias);
    const delta = tf.abs(tf.sub(es, et));
    const n = delta.shape[0]!;
    const prod = tf.mul(tf.slice(delta, [0, 0], [n - 1, -1]), tf.slice(delta, [1, 0], [n - 1, -1]));
    return tf.mean(tf.sum(prod, 1)) as tf.Scalar;
  });
}

/** sum((G_t/|G_t|_F - G_s/|G_s|_F)^2) / N^2 with G = F F^T of each side's flattened features. */
export function ccGramLoss(student: tf.Tensor, teacher: tf.Tensor): tf.Scalar {
  checkBatch('ccGramLoss', student, teacher, 2);
  return tf.tidy(() => {
    const gram = (x: tf.Tensor) => {
      const f = flattenRows(x);
      const g = tf.matMul(f, f, false, true);
      return tf.div(g, tf.norm(g));
    };
    const n = student.shape[0]!;
    return tf.div(tf.sum(tf.square(tf.sub(gram(detach(teacher)), gram(student)))), n * n) as tf.Scalar;
  });
}

/** Throws unless each side's flat width fits its kernel and both embed to one width. */
function checkEmbeddings(student: tf.Tensor, teacher: tf.Tensor, es: LinearWeights, et: LinearWeights): void {
  const flat = (x: tf.Tensor) => x.size / x.shape[0]!;
  const [inS, dS] = es.kernel.shape;
  const [inT, dT] = et.kernel.shape;
  if (
    flat(student) !== inS ||
    flat(teacher) !== inT ||
    dS !== dT ||
    es.bias.shape[0] !== dS ||
    et.bias.shape[0] !== dT
  ) {
    const show = (x: { shape: number[] }) => `[${x.shape.join(', ')}]`;
    throw new Error(
      `ccLoss: expected features of flat width ${inS} (student) and ${inT} (teacher) for embedding ` +
        `kernels [in, d] of one d with biases [d], got student ${show(student)}, teacher ` +
        `${show(teacher)}, kernels ${show(es.kernel)} and ${show(et.kernel)}, biases ` +
        `${show(es.bias)} and ${show(et.bias)}`,
    );
  }
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

/** The embedding variant's trainable embeddings (none for the Gram variant). */
export type CcParts = { readonly embedS?: tfl.LayersModel; readonly embedT?: tfl.LayersModel };

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
  parts: (shapes: TapShapes<'feat'>, cfg): CcParts =>
    cfg.variant === 'gram'
      ? {}
      : {
          embedS: linearEmbed('cc_embed_s', width(shapes.student.feat), cfg.featDim),
          embedT: linearEmbed('cc_embed_t', width(shapes.teacher.feat), cfg.featDim),
        },
  loss: (ctx) => {
    const { embedS, embedT } = ctx.parts;
    if (ctx.config.variant === 'gram' || embedS === undefined || embedT === undefined)
      return ccGramLoss(ctx.student.features.feat, ctx.teacher.features.feat);
    return ccLoss(
      ctx.student.features.feat,
      ctx.teacher.features.feat,
      linearWeights(embedS),
      linearWeights(embedT),
    );
  },
};
