/**
 * Self-distillation, Be Your Own Teacher (Zhang, Song, Gao, Chen, Bao, Ma, ICCV 2019): the student
 * grows an auxiliary head — bottleneck convolutions down to the deepest map's size, global pooling
 * and a classifier — on the output of each shallower stage. The deepest classifier (the student's
 * own) teaches every head, in one backward pass:
 *
 *   L = own losses of the deepest (CE)
 *     + sum_i [ (1 - alpha) CE(head_i) + alpha KD(head_i <- deepest, T) + lambda |f_i - f_deep|^2 ]
 *
 * with f_i the head's pooled bottleneck feature and f_deep the student's pooled feature (detached,
 * as the deepest logits: the deepest is the teacher of the others, not pulled toward them). The
 * heads are trained with the student and checkpointed with it; after training each head is saved as
 * an early-exit model (input to that head's logits, a tfjs layers model) under heads/<label>/, with
 * its test accuracy in results.json.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { exportTfjs } from '../../export/tfjs.js';
import { fusedBatchNorm } from '../../models/batchnorm.js';
import { configuredModelTaps, type ModelConfig, modelLabel } from '../../models/configured.js';
import { tapModel } from '../../taps/taps.js';
import { evaluate, type StepInput, type TrainTask } from '../../train/trainer.js';
import { RetortError } from '../../util/errors.js';
import { crossEntropy } from '../losses/ce.js';
import { kdLoss } from '../losses/kd.js';
import { detach } from '../losses/types.js';
import { fitSingleStage, needsTeacher, requireOneStage } from './offline.js';
import type { SchemeDescriptor } from './types.js';

export const byotSchema = z.strictObject({
  /**
   * Student layers (shallow to deep) that get an auxiliary head; default for zoo models: every
   * stage output between the stem and the last stage.
   */
  heads: z.array(z.string().min(1)).min(1).optional(),
  /** The layer giving the deepest feature (a vector, or a map that is pooled); default: the zoo's last stage. */
  feature: z.string().min(1).optional(),
  /** KD temperature from the deepest classifier to each head. */
  T: z.number().positive().default(3),
  /** Share of KD in each head's classification loss: (1 - alpha) CE + alpha KD. */
  alpha: z.number().min(0).max(1).default(0.3),
  /** Weight of each head's feature L2 to the deepest feature. */
  lambda: z.number().min(0).default(0.03),
  /** Save each head as an early-exit tfjs model under heads/. */
  exportHeads: z.boolean().default(true),
});
export type ByotConfig = z.output<typeof byotSchema>;

/**
 * The heads and the feature layer: from the options, or from the stage taps of the model (a zoo
 * name, or the experiment's model section: a zoo entry's or a search candidate's taps).
 */
export function byotLayers(
  student: tfl.LayersModel,
  model: string | ModelConfig | undefined,
  cfg: ByotConfig,
): { heads: string[]; feature: string } {
  let heads = cfg.heads;
  let feature = cfg.feature;
  if (heads === undefined || feature === undefined) {
    const section = typeof model === 'string' ? { name: model, options: {} } : model;
    const taps = section === undefined ? undefined : configuredModelTaps(section);
    if (taps === undefined)
      throw new RetortError(
        'scheme byot: a model from your own module (or a search space without taps) needs scheme.heads (layer names) and scheme.feature',
      );
    const modelName = modelLabel(section!);
    const stages = taps.stages.map((s) => s.output);
    const rank = (l: string) => student.getLayer(l).outputShape.length - 1;
    const maps = stages.filter((l) => rank(l) === 3);
    heads ??= maps.slice(1, -1);
    feature ??= stages.at(-1)!;
    if (heads.length === 0)
      throw new RetortError(
        `scheme byot: model ${modelName} has no stage between its stem and its last stage to put a head on; name layers in scheme.heads`,
      );
  }
  for (const l of [...heads, feature]) {
    try {
      student.getLayer(l);
    } catch {
      throw new RetortError(`scheme byot: the student has no layer '${l}'`);
    }
  }
  return { heads, feature };
}

/**
 * One auxiliary head: stride-2 3x3 conv + BN + ReLU blocks to `channels` until the map is no larger
 * than `minSize`, global average pooling (the feature), a linear classifier. Outputs [feature, logits].
 */
export function byotHead(
  name: string,
  inShape: readonly number[],
  channels: number,
  minSize: number,
  numClasses: number,
): tfl.LayersModel {
  if (inShape.length !== 3)
    throw new RetortError(
      `scheme byot: head ${name} needs a feature map [H, W, C], got [${inShape.join(', ')}]`,
    );
  const input = tfl.input({ shape: [...inShape] });
  let x: tfl.SymbolicTensor = input;
  let h = inShape[0]!;
  let i = 0;
  do {
    x = tfl.layers
      .conv2d({
        name: `${name}.conv${i}`,
        filters: channels,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        useBias: false,
      })
      .apply(x) as tfl.SymbolicTensor;
    x = fusedBatchNorm({ name: `${name}.bn${i}`, axis: -1, momentum: 0.9, epsilon: 1e-5 }).apply(
      x,
    ) as tfl.SymbolicTensor;
    x = tfl.layers
      .activation({ name: `${name}.relu${i}`, activation: 'relu' })
      .apply(x) as tfl.SymbolicTensor;
    h = Math.ceil(h / 2);
    i++;
  } while (h > minSize);
  const feat = tfl.layers.globalAveragePooling2d({ name: `${name}.pool` }).apply(x) as tfl.SymbolicTensor;
  const logits = tfl.layers
    .dense({ name: `${name}.fc`, units: numClasses })
    .apply(feat) as tfl.SymbolicTensor;
  return tfl.model({ name, inputs: input, outputs: [feat, logits] });
}

/** The student up to `layer`, then the head's layers: an early-exit classifier sharing the weights. */
export function earlyExit(student: tfl.LayersModel, layer: string, head: tfl.LayersModel): tfl.LayersModel {
  let x = student.getLayer(layer).output as tfl.SymbolicTensor;
  // The head is a chain; its last layer (the classifier) takes the pooled feature.
  for (const l of head.layers.slice(1)) x = l.apply(x) as tfl.SymbolicTensor;
  return tfl.model({ name: `${student.name}_exit_${head.name}`, inputs: student.inputs, outputs: x });
}

/** Mean over the batch of the squared L2 distance between rows. */
function rowSquaredDistance(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.div(tf.sum(tf.square(tf.sub(a, b))), a.shape[0]!) as tf.Scalar);
}

export const byot: SchemeDescriptor<ByotConfig> = {
  name: 'byot',
  paper: {
    title:
      'Be Your Own Teacher: Improve the Performance of Convolutional Neural Networks via Self Distillation',
    authors: 'Linfeng Zhang, Jiebo Song, Anni Gao, Jingwei Chen, Chenglong Bao, Kaisheng Ma',
    venue: 'ICCV',
    year: 2019,
  },
  schema: byotSchema,
  teacher: 'none',
  check(exp, cfg, stages, where) {
    requireOneStage(exp, 'byot', where);
    if (exp.model.module !== undefined && (cfg.heads === undefined || cfg.feature === undefined))
      throw new RetortError(
        `${where}: scheme byot: a model from your own module needs scheme.heads (layer names) and scheme.feature`,
      );
    for (const t of stages[0]!.terms)
      if (needsTeacher(t) || Object.keys(t.taps.student).length > 0 || t.descriptor.parts)
        throw new RetortError(
          `${where}: losses: ${t.label} needs a teacher, taps or parts; in scheme byot the deepest classifier is the teacher, and the student's own losses are plain (ce, tf-kd)`,
        );
  },
  async run(ctx) {
    const { exp, config, student, log } = ctx;
    const stage = ctx.stages[0]!;
    const { heads: headLayers, feature } = byotLayers(student, exp.model, config);
    const view = tapModel(student, [...headLayers, feature]);
    const featDim = view.shapes.at(-1)!.at(-1)!;
    // The smallest map in the student: heads downsample to it, as the deepest stage did.
    const minSize = Math.min(
      ...student.layers
        .map((l) => l.outputShape)
        .filter((s): s is (number | null)[] => Array.isArray(s) && s.length === 4 && typeof s[1] === 'number')
        .map((s) => s[1] as number),
    );
    const labels = headLayers.map((_, i) => `head${i + 1}`);
    const heads = headLayers.map((_, i) =>
      byotHead(`byot_${labels[i]}`, view.shapes[i]!, featDim, minSize, ctx.data.numClasses),
    );
    const exits = heads.map((h, i) => earlyExit(student, headLayers[i]!, h));
    const task: TrainTask = {
      model: student,
      parts: heads,
      others: Object.fromEntries(exits.map((m, i) => [labels[i]!, m])),
      loss(input: StepInput) {
        const s = view.run(input.x, true);
        const terms: Record<string, tf.Scalar> = {};
        let total: tf.Scalar | undefined;
        const add = (v: tf.Scalar, w: number) => {
          const wv = tf.mul(v, w) as tf.Scalar;
          total = total === undefined ? wv : (tf.add(total, wv) as tf.Scalar);
        };
        for (const t of stage.terms) {
          const v = t.descriptor.loss({
            config: t.config,
            student: { logits: s.logits, features: {} },
            teacher: { logits: s.logits, features: {} },
            labels: input.y,
            epoch: input.epoch,
            indices: input.index,
            parts: {},
          });
          terms[t.label] = v;
          add(v, t.weight);
        }
        let deep = s.features.at(-1)!;
        if (deep.rank === 4) deep = tf.mean(deep, [1, 2]);
        const deepFeat = detach(deep);
        heads.forEach((head, i) => {
          const [feat, logits] = head.apply(s.features[i]!, { training: true }) as [tf.Tensor2D, tf.Tensor2D];
          const ce = crossEntropy(logits, input.y);
          const kd = kdLoss(logits, s.logits, { T: config.T });
          const l2 = rowSquaredDistance(feat, deepFeat);
          terms[`${labels[i]}/ce`] = ce;
          terms[`${labels[i]}/kd`] = kd;
          terms[`${labels[i]}/l2`] = l2;
          add(ce, 1 - config.alpha);
          add(kd, config.alpha);
          add(l2, config.lambda);
        });
        return { total: total!, terms, logits: s.logits };
      },
    };
    log(
      `scheme byot: heads on ${headLayers.map((l, i) => `${l} (${heads[i]!.countParams()} params)`).join(', ')}; deepest feature ${feature}; T ${config.T}, alpha ${config.alpha}, lambda ${config.lambda}`,
    );
    const { records, seconds } = await fitSingleStage(ctx, task);
    const out: {
      label: string;
      layer: string;
      params: number;
      testTop1: number;
      testTop5: number;
      dir?: string;
    }[] = [];
    for (const [i, exit] of exits.entries()) {
      const t = await evaluate(exit, ctx.data.test);
      const dir = join(ctx.runDir, 'heads', labels[i]!);
      if (config.exportHeads) await exportTfjs(exit, dir);
      out.push({
        label: labels[i]!,
        layer: headLayers[i]!,
        params: exit.countParams(),
        testTop1: t.top1,
        testTop5: t.top5,
        ...(config.exportHeads ? { dir } : {}),
      });
    }
    log(`heads: ${out.map((h) => `${h.label} ${h.testTop1.toFixed(2)}% (${h.params} params)`).join(', ')}`);
    for (const h of heads) h.dispose();
    return {
      stages: [
        {
          name: stage.name,
          epochs: stage.epochs,
          losses: [...stage.terms.map((t) => t.label), 'byot'],
          seconds,
        },
      ],
      records,
      extra: { heads: out },
    };
  },
};
