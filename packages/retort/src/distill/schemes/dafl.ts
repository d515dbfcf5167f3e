/**
 * Data-free distillation with a generator, DAFL (Chen, Wang, Xu, Yang, Liu, Shi, Xu, Xu, Tian,
 * "Data-Free Learning of Student Networks", ICCV 2019). Where DeepInversion (data-free.ts) optimises
 * every image's pixels, DAFL trains a generator G(z) against the frozen teacher T so that its images
 * look like training data to T (eq. 8 of the paper):
 *
 *   L_G = oh * mean_i CE(T(G(z_i)), argmax T(G(z_i)))      one-hot: T is confident on them
 *       - a  * mean_i |f_T(G(z_i))|_1 / d                  activation: T's features (the input of its
 *                                                          last dense layer) fire strongly
 *       - ie * H(mean_i softmax(T(G(z_i))))                information entropy: the classes balanced
 *       + bn * sum_l BN-statistics distance                optional (0 in the paper): DeepInversion's
 *                                                          prior, which later generator methods add
 *
 * (H in nats; the authors' code takes log10, so its ie = 5 is 5 / ln 10 = 2.17 here.) Once the
 * generator is trained, images are cheap: `images` of them are drawn from it, labelled with the
 * teacher's top-1, saved as a dataset (IDX files, grid.png) like data-free's, and the student is
 * distilled on them with the experiment's losses. The paper instead updates the student on fresh
 * generator batches while G trains; drawing a fixed set after training decouples the two (the
 * student's training is then an ordinary resumable run, and users can inspect exactly what it
 * learnt from) at the price of a finite set — make `images` large, drawing costs one generator
 * forward pass per batch.
 *
 * The generator is the paper's (a dense layer to a (H/4)x(W/4) map, two nearest 2x upsamplings each
 * followed by conv 3x3 + BN + LeakyReLU 0.2, conv 3x3 to the image's channels, tanh), with `width`
 * channels where the paper has 128 and the tanh mapped onto the valid pixel range [0, 1] (the paper
 * normalises with a final BN; mapping keeps every image an exact 8-bit image the teacher saw). It is
 * trained by the common trainer — progress, NaN checks, checkpoints every epoch, exact resume —
 * under synthetic/generator/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import type { Batch, Loader } from '../../data/loader.js';
import { Net, type Sym } from '../../models/common.js';
import { tapModel } from '../../taps/taps.js';
import { Adam } from '../../train/optimizers.js';
import { fit } from '../../train/trainer.js';
import { RetortError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { bnLayers, bnStatLoss } from './data-free.js';
import { refuseViews } from './offline.js';
import {
  checkByteLabels,
  distillOnSynthetic,
  refuseOnnxTeacher,
  teacherClasses,
  teacherModel,
} from './synthetic.js';
import type { SchemeDescriptor } from './types.js';

export const daflSchema = z.strictObject({
  /** Images drawn from the trained generator for the student (rounded up to whole batches). */
  images: z.number().int().positive().default(16384),
  /** Generator batch (the entropy term and the BN statistics are per batch). */
  batchSize: z.number().int().min(2).default(256),
  /** Generator training: epochs of `steps` Adam steps (checkpointed after each epoch). */
  epochs: z.number().int().positive().default(20),
  steps: z.number().int().positive().default(50),
  /** Generator learning rate (Adam, betas 0.5 / 0.999 as GANs use). */
  lr: z.number().positive().default(0.002),
  /** Dimension of the generator's Gaussian input. */
  latent: z.number().int().positive().default(100),
  /** Channels of the generator's first conv (the second has half); the paper has 128. */
  width: z.number().int().min(2).default(64),
  /** Weights of the terms of L_G (the paper's alpha = 0.1 and beta = 5 for a and ie). */
  oh: z.number().min(0).default(1),
  a: z.number().min(0).default(0.1),
  ie: z.number().min(0).default(5),
  bn: z.number().min(0).default(0),
});
export type DaflConfig = z.output<typeof daflSchema>;

/**
 * The generator: z as a [N, 1, 1, latent] input (the trainer feeds 4-D batches) to an [N, H, W, C]
 * image in [-1, 1]. H and W must be multiples of 4.
 */
export function daflGenerator(opts: {
  shape: readonly [number, number, number];
  latent: number;
  width: number;
  seed?: number;
}): tfl.LayersModel {
  const [H, W, C] = opts.shape;
  if (H % 4 !== 0 || W % 4 !== 0)
    throw new Error(`DAFL generator: image height and width must be multiples of 4, got ${H}x${W}`);
  const net = new Net(opts.seed, 'torch-default');
  const z0 = tfl.input({ shape: [1, 1, opts.latent], name: 'z' });
  const w = opts.width;
  const w2 = Math.max(1, w >> 1);
  let x: Sym = tfl.layers.flatten({ name: 'z_flat' }).apply(z0) as Sym;
  x = net.dense(x, 'l1', w * (H / 4) * (W / 4), 'torch-default');
  x = tfl.layers.reshape({ name: 'l1_map', targetShape: [H / 4, W / 4, w] }).apply(x) as Sym;
  x = net.bn(x, 'bn0');
  x = tfl.layers.upSampling2d({ name: 'up1', size: [2, 2] }).apply(x) as Sym;
  x = net.conv(x, 'conv1', w, 3, 1, true);
  x = net.bn(x, 'bn1');
  x = tfl.layers.leakyReLU({ name: 'act1', alpha: 0.2 }).apply(x) as Sym;
  x = tfl.layers.upSampling2d({ name: 'up2', size: [2, 2] }).apply(x) as Sym;
  x = net.conv(x, 'conv2', w2, 3, 1, true);
  x = net.bn(x, 'bn2');
  x = tfl.layers.leakyReLU({ name: 'act2', alpha: 0.2 }).apply(x) as Sym;
  x = net.conv(x, 'conv3', C, 3, 1, true);
  x = tfl.layers.activation({ name: 'image', activation: 'tanh' }).apply(x) as Sym;
  return tfl.model({ inputs: z0, outputs: x, name: 'dafl_generator' });
}

/** Batches of standard-normal z, [n, 1, 1, latent], from a checkpointed random state. */
export class LatentLoader implements Loader {
  readonly name = 'latent';
  readonly rng: Rng;
  readonly size: number;

  constructor(
    readonly batchSize: number,
    readonly length: number,
    readonly latent: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    this.size = batchSize * length;
  }

  *epoch(): Iterable<Batch> {
    const n = this.batchSize;
    for (let b = 0; b < this.length; b++) {
      const x = new Float32Array(n * this.latent);
      // Box-Muller; 1 - u keeps the logarithm finite.
      for (let i = 0; i < x.length; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - this.rng.next()));
        const t = 2 * Math.PI * this.rng.next();
        x[i] = r * Math.cos(t);
        if (i + 1 < x.length) x[i + 1] = r * Math.sin(t);
      }
      yield { x, y: new Int32Array(n), index: Uint32Array.from({ length: n }, (_, i) => b * n + i), n };
    }
  }
}

/** The terms of L_G, from the teacher's logits and features on a generated batch. */
export function daflTerms(
  logits: tf.Tensor2D,
  features: tf.Tensor,
): { oh: tf.Scalar; a: tf.Scalar; ie: tf.Scalar } {
  return tf.tidy(() => {
    const K = logits.shape[1];
    const target = tf.oneHot(tf.argMax(logits, 1), K);
    const oh = tf.losses.softmaxCrossEntropy(target, logits) as tf.Scalar;
    const a = tf.neg(tf.mean(tf.abs(features))) as tf.Scalar;
    const p = tf.mean(tf.softmax(logits), 0);
    // -H(p) = sum p log p; p is a mean of softmaxes, so it is > 0 wherever a logit is finite.
    const ie = tf.sum(tf.mul(p, tf.log(p))) as tf.Scalar;
    return { oh, a, ie };
  });
}

export const dafl: SchemeDescriptor<DaflConfig> = {
  name: 'dafl',
  paper: {
    title: 'Data-Free Learning of Student Networks',
    authors:
      'Hanting Chen, Yunhe Wang, Chang Xu, Zhaohui Yang, Chuanjian Liu, Boxin Shi, Chunjing Xu, Chao Xu, Qi Tian',
    venue: 'ICCV',
    year: 2019,
  },
  schema: daflSchema,
  teacher: 'required',
  check(exp, cfg, _stages, where) {
    refuseOnnxTeacher(exp, where, 'dafl', "trains a generator through the teacher's gradients");
    if (cfg.oh + cfg.a + cfg.ie + cfg.bn === 0)
      throw new RetortError(
        `${where}: scheme dafl: oh, a, ie and bn are all 0 (the generator would learn nothing)`,
      );
  },
  async run(ctx) {
    refuseViews(ctx, 'dafl', "it synthesizes the teacher's inputs and trains the student on the same images");
    const { exp, config, data, log } = ctx;
    const teacher = teacherModel(ctx, 'dafl');
    const [H, W, C] = data.shape;
    const K = data.numClasses;
    checkByteLabels(ctx.where, 'dafl', K);
    if (H % 4 !== 0 || W % 4 !== 0)
      throw new RetortError(
        `${ctx.where}: scheme dafl: the generator upsamples twice by 2, so image height and width must be multiples of 4; the data is ${H}x${W}`,
      );
    const dense = teacher.layers.filter((l) => l.getClassName() === 'Dense');
    if (dense.length === 0)
      throw new RetortError(
        `${ctx.where}: scheme dafl: the teacher ${teacher.name} has no dense layer (its input is the feature the activation term reads)`,
      );
    const bns = config.bn > 0 ? bnLayers(teacher) : [];
    if (config.bn > 0 && bns.length === 0)
      throw new RetortError(
        `${ctx.where}: scheme dafl: bn > 0 but the teacher ${teacher.name} has no batch-norm layer`,
      );
    const view = tapModel(teacher, [`${dense.at(-1)!.name}:pre`, ...bns.map((b) => `${b.name}:pre`)]);
    const mean = tf.tensor1d(data.mean as number[]);
    const std = tf.tensor1d(data.std as number[]);
    // tanh in [-1, 1] -> pixel in [0, 1] -> the data's normalisation, as the teacher was trained.
    const normalise = (img: tf.Tensor): tf.Tensor4D =>
      tf.div(tf.sub(tf.mul(tf.add(img, 1), 0.5), mean), std) as tf.Tensor4D;

    const generator = daflGenerator({
      shape: [H, W, C],
      latent: config.latent,
      width: config.width,
      seed: exp.seed * 7 + 1,
    });
    const dir = join(ctx.runDir, 'synthetic');
    const genDir = join(dir, 'generator');
    mkdirSync(genDir, { recursive: true });
    const ckptDir = join(genDir, 'checkpoints');
    const started = existsSync(join(ckptDir, 'last.ckpt')) || existsSync(join(ckptDir, 'previous.ckpt'));
    const t0 = performance.now();
    log(
      `dafl: training the generator (${config.epochs} epochs of ${config.steps} steps, batch ${config.batchSize}) against ${teacher.name}`,
    );
    const genRecords = await fit(
      {
        model: generator,
        loss: ({ x }) => {
          const img = generator.apply(x, { training: true }) as tf.Tensor4D;
          const r = view.run(normalise(img), false);
          const t = daflTerms(r.logits, r.features[0]!);
          const terms: Record<string, tf.Scalar> = { oh: t.oh, a: t.a, ie: t.ie };
          let total = tf.addN([tf.mul(t.oh, config.oh), tf.mul(t.a, config.a), tf.mul(t.ie, config.ie)]);
          if (config.bn > 0) {
            terms['bn'] = bnStatLoss(r.features.slice(1), bns);
            total = tf.add(total, tf.mul(terms['bn'], config.bn));
          }
          return { total: total as tf.Scalar, terms };
        },
      },
      {
        epochs: config.epochs,
        optimizer: new Adam({ lr: config.lr, beta1: 0.5, beta2: 0.999 }),
        schedule: { kind: 'constant', lr: config.lr },
        train: new LatentLoader(config.batchSize, config.steps, config.latent, exp.seed * 131 + 17),
        runDir: genDir,
        resume: ctx.resume && started,
        log,
      },
    );
    const genSeconds = genRecords.reduce((s, r) => s + r.seconds, 0);

    // Draw the set: generator in training mode (batch statistics, as the teacher saw its images
    // while it learnt), a fixed random state so a resumed run draws the same images.
    const B = config.batchSize;
    const batches = Math.ceil(config.images / B);
    const count = batches * B;
    const per = H * W * C;
    const pixels = new Uint8Array(count * per);
    const labels = new Uint8Array(count);
    const draw = new LatentLoader(B, batches, config.latent, exp.seed * 131 + 29);
    let b = 0;
    for (const z0 of draw.epoch()) {
      const bytes = tf.tidy(() => {
        const img = generator.apply(tf.tensor4d(z0.x, [B, 1, 1, config.latent]), {
          training: true,
        }) as tf.Tensor;
        const u8 = tf.cast(tf.round(tf.mul(tf.clipByValue(tf.add(img, 1), 0, 2), 127.5)), 'int32');
        return Uint8Array.from(u8.dataSync());
      });
      pixels.set(bytes, b * B * per);
      labels.set(teacherClasses(teacher, bytes, data.mean, data.std, [B, H, W, C]), b * B);
      b++;
    }
    tf.dispose([mean, std]);
    const classCounts = Array.from({ length: K }, () => 0);
    for (const l of labels) classCounts[l]!++;
    const seconds = (performance.now() - t0) / 1000;
    log(
      `dafl: drew ${count} images from the generator (teacher's classes ${classCounts.join('/')}) -> ${dir} (grid.png to look at)`,
    );
    const done = await distillOnSynthetic(ctx, { pixels, labels, count, dir });
    return {
      ...done,
      extra: {
        synthetic: {
          images: count,
          realTrainingImages: 0,
          seconds,
          generatorSeconds: genSeconds,
          generatorSteps: config.epochs * config.steps,
          // How many drawn images the teacher puts in each class (the entropy term's job).
          classCounts,
          dir,
        },
      },
    };
  },
};
