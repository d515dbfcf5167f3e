/**
 * Data-free distillation by model inversion, DeepInversion (Yin, Molchanov, Alvarez, Li, Mallya,
 * Hoiem, Jha, Kautz, CVPR 2020): the student never sees a real training image. Batches of inputs
 * start as Gaussian noise and are optimised (Adam on the pixels, the teacher frozen in inference
 * mode) so that the teacher classifies them as sampled target classes while the statistics each
 * batch-norm layer sees match that layer's running statistics, with image priors:
 *
 *   L(x) = CE(T(x), y) + bn * sum_l (|mu_l(x) - mean_l|_2 + |var_l(x) - var_l|_2)
 *          + tv * mean((x_{i+1,j} - x_{i,j})^2 + (x_{i,j+1} - x_{i,j})^2) + l2 * mean(x^2)
 *
 * (eq. 3-5 of the paper; TV in its squared form; inputs jittered by a random roll each iteration
 * and kept in the valid pixel range.) The synthesized images are saved as a dataset — IDX files a
 * `fashion-mnist`-style reader loads, and grid.png to look at — and the student is then trained on
 * them with the experiment's losses (KD from the teacher), as the offline scheme would, with the
 * data section's augmentation (cropPadding, hflip) applied to them. The real test split is used for
 * evaluation only.
 *
 * Resume: finished synthesis batches are kept (synthetic/batches/) and not synthesized again; the
 * student's training resumes from its checkpoint as any run.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { tapModel } from '../../taps/taps.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { RetortError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { refuseViews } from './offline.js';
import {
  checkByteLabels,
  distillOnSynthetic,
  refuseOnnxTeacher,
  teacherClasses,
  teacherModel,
  toBytes,
} from './synthetic.js';
import type { SchemeDescriptor } from './types.js';

export const dataFreeSchema = z.strictObject({
  /** Number of images to synthesize (rounded up to whole batches). */
  images: z.number().int().positive().default(4096),
  /** Images optimised together (the batch-norm statistics are per batch). */
  batchSize: z.number().int().min(2).default(256),
  /** Adam steps per batch. */
  iterations: z.number().int().positive().default(200),
  /** Adam learning rate on the (normalised) pixels. */
  lr: z.number().positive().default(0.1),
  /** Weights of the terms of L(x). */
  ce: z.number().min(0).default(1),
  bn: z.number().min(0).default(1),
  tv: z.number().min(0).default(1e-3),
  l2: z.number().min(0).default(0),
  /** Largest random roll (pixels, each axis) applied before each step. */
  jitter: z.number().int().min(0).default(2),
  /** Random horizontal flips during synthesis (images whose classes are mirror-symmetric). */
  flip: z.boolean().default(false),
});
export type DataFreeConfig = z.output<typeof dataFreeSchema>;

/** BatchNorm layers of `model` with their running mean and variance. */
export function bnLayers(
  model: tfl.LayersModel,
): { name: string; mean: tf.Tensor1D; variance: tf.Tensor1D }[] {
  return model.layers
    .filter((l) => l.getClassName() === 'BatchNormalization')
    .map((l) => {
      const w = l.weights;
      const mean = w.find((v) => /moving_mean(_\d+)?$/.test(v.name));
      const variance = w.find((v) => /moving_variance(_\d+)?$/.test(v.name));
      if (!mean || !variance) throw new Error(`layer ${l.name}: no running statistics`);
      return { name: l.name, mean: mean.read() as tf.Tensor1D, variance: variance.read() as tf.Tensor1D };
    });
}

/** sum over layers of |batch mean - running mean|_2 + |batch var - running var|_2; feats [N, H, W, C] or [N, C]. */
export function bnStatLoss(
  feats: readonly tf.Tensor[],
  stats: readonly { mean: tf.Tensor1D; variance: tf.Tensor1D }[],
): tf.Scalar {
  return tf.tidy(() => {
    const parts = feats.map((f, i) => {
      const axes = f.rank === 4 ? [0, 1, 2] : [0];
      const { mean, variance } = tf.moments(f, axes);
      return tf.add(tf.norm(tf.sub(mean, stats[i]!.mean)), tf.norm(tf.sub(variance, stats[i]!.variance)));
    });
    return tf.addN(parts) as tf.Scalar;
  });
}

/** Mean squared difference of vertical and horizontal neighbours: [N, H, W, C]. */
export function tvLoss(x: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const dv = tf.sub(
      tf.slice(x, [0, 1, 0, 0], [n, h - 1, w, c]),
      tf.slice(x, [0, 0, 0, 0], [n, h - 1, w, c]),
    );
    const dh = tf.sub(
      tf.slice(x, [0, 0, 1, 0], [n, h, w - 1, c]),
      tf.slice(x, [0, 0, 0, 0], [n, h, w - 1, c]),
    );
    return tf.add(tf.mean(tf.square(dv)), tf.mean(tf.square(dh))) as tf.Scalar;
  });
}

/** x rolled by (dy, dx) pixels, wrapping around (the paper's jitter). */
export function roll(x: tf.Tensor4D, dy: number, dx: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    let y = x;
    const sy = ((dy % h) + h) % h;
    if (sy)
      y = tf.concat(
        [tf.slice(y, [0, h - sy, 0, 0], [n, sy, w, c]), tf.slice(y, [0, 0, 0, 0], [n, h - sy, w, c])],
        1,
      );
    const sx = ((dx % w) + w) % w;
    if (sx)
      y = tf.concat(
        [tf.slice(y, [0, 0, w - sx, 0], [n, h, sx, c]), tf.slice(y, [0, 0, 0, 0], [n, h, w - sx, c])],
        2,
      );
    return y;
  });
}

export const dataFree: SchemeDescriptor<DataFreeConfig> = {
  name: 'data-free',
  paper: {
    title: 'Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion',
    authors:
      'Hongxu Yin, Pavlo Molchanov, Zhizhong Li, Jose M. Alvarez, Arun Mallya, Derek Hoiem, Niraj K. Jha, Jan Kautz',
    venue: 'CVPR',
    year: 2020,
  },
  schema: dataFreeSchema,
  teacher: 'required',
  check(exp, _cfg, _stages, where) {
    refuseOnnxTeacher(exp, where, 'data-free', 'inverts the teacher through its batch-norm statistics');
  },
  async run(ctx) {
    refuseViews(
      ctx,
      'data-free',
      "it synthesizes the teacher's inputs and trains the student on the same images",
    );
    const { exp, config, data, log } = ctx;
    const model = teacherModel(ctx, 'data-free');
    const bns = bnLayers(model);
    if (bns.length === 0)
      throw new RetortError(
        `${ctx.where}: scheme data-free: the teacher ${model.name} has no batch-norm layer to invert`,
      );
    const view = tapModel(
      model,
      bns.map((b) => `${b.name}:pre`),
    );
    const [H, W, C] = data.shape;
    const K = data.numClasses;
    checkByteLabels(ctx.where, 'data-free', K);
    const per = H * W * C;
    // How many of the 8-bit images the teacher puts in the class they were synthesized for.
    const hitsOf = (bytes: Uint8Array, y: ArrayLike<number>): number => {
      const got = teacherClasses(model, bytes, data.mean, data.std, [y.length, H, W, C]);
      let n = 0;
      for (let i = 0; i < y.length; i++) if (got[i] === y[i]) n++;
      return n;
    };
    const batches = Math.ceil(config.images / config.batchSize);
    const count = batches * config.batchSize;
    const dir = join(ctx.runDir, 'synthetic');
    mkdirSync(join(dir, 'batches'), { recursive: true });
    const pixels = new Uint8Array(count * per);
    const labels = new Uint8Array(count);
    // The valid range of a normalised pixel, per channel: (0 - mean) / std .. (1 - mean) / std.
    const lo = tf.tensor1d(data.mean.map((m, i) => -m / data.std[i]!));
    const hi = tf.tensor1d(data.mean.map((m, i) => (1 - m) / data.std[i]!));
    const t0 = performance.now();
    let synthSeconds = 0;
    let made = 0;
    // The teacher's hits per batch: measured when a batch is made, later for batches kept from before.
    const hitsByBatch: (number | undefined)[] = new Array(batches);
    for (let b = 0; b < batches; b++) {
      const file = join(dir, 'batches', `${String(b).padStart(4, '0')}.bin`);
      const B = config.batchSize;
      if (ctx.resume && existsSync(file)) {
        const buf = readFileSync(file);
        pixels.set(buf.subarray(0, B * per), b * B * per);
        labels.set(buf.subarray(B * per, B * per + B), b * B);
        continue;
      }
      const s0 = performance.now();
      const rng = new Rng(exp.seed * 100003 + b);
      const y = Int32Array.from({ length: B }, (_, i) => (i + b * B) % K);
      const yT = tf.tensor1d(y, 'int32');
      const onehot = tf.oneHot(yT, K);
      const init = tf.randomNormal([B, H, W, C], 0, 1, 'float32', exp.seed * 7919 + b);
      const x = tf.variable(init);
      init.dispose();
      const opt = tf.train.adam(config.lr, 0.5, 0.9);
      let last = { total: 0, ce: 0, bn: 0 };
      for (let it = 0; it < config.iterations; it++) {
        const dy = config.jitter ? rng.int(2 * config.jitter + 1) - config.jitter : 0;
        const dx = config.jitter ? rng.int(2 * config.jitter + 1) - config.jitter : 0;
        const flip = config.flip && rng.next() < 0.5;
        const report = it === config.iterations - 1;
        opt.minimize(
          () => {
            let xin = roll(x as tf.Tensor4D, dy, dx);
            if (flip) xin = tf.reverse(xin, 2);
            const r = view.run(xin, false);
            const ce = tf.losses.softmaxCrossEntropy(onehot, r.logits) as tf.Scalar;
            const bn = bnStatLoss(r.features, bns);
            let total = tf.add(tf.mul(ce, config.ce), tf.mul(bn, config.bn)) as tf.Scalar;
            if (config.tv > 0)
              total = tf.add(total, tf.mul(tvLoss(x as tf.Tensor4D), config.tv)) as tf.Scalar;
            if (config.l2 > 0) total = tf.add(total, tf.mul(tf.mean(tf.square(x)), config.l2)) as tf.Scalar;
            if (report)
              last = {
                total: total.dataSync()[0]!,
                ce: ce.dataSync()[0]!,
                bn: bn.dataSync()[0]!,
              };
            return total;
          },
          false,
          [x],
        );
        tf.tidy(() => x.assign(tf.minimum(tf.maximum(x, lo), hi)));
      }
      // Store as 8-bit pixels: the dataset users inspect and the student learns from.
      const bytes = toBytes(x, data.mean, data.std);
      const hits = hitsOf(bytes, y);
      hitsByBatch[b] = hits;
      tf.dispose([x, yT, onehot]);
      opt.dispose();
      pixels.set(bytes, b * B * per);
      labels.set(Uint8Array.from(y), b * B);
      const out = new Uint8Array(B * per + B);
      out.set(bytes, 0);
      out.set(Uint8Array.from(y), B * per);
      writeFileAtomic(file, out);
      const sec = (performance.now() - s0) / 1000;
      synthSeconds += sec;
      made++;
      // Batches kept from an earlier run took no time here: the ETA is from the ones made now.
      const eta = (synthSeconds / made) * (batches - b - 1);
      log(
        `synthesis batch ${b + 1}/${batches}: loss ${last.total.toFixed(3)} (ce ${last.ce.toFixed(3)}, bn ${last.bn.toFixed(3)}), teacher agrees on ${hits}/${B}, ${(B / sec).toFixed(1)} img/s, ETA ${eta.toFixed(0)} s`,
      );
    }
    tf.dispose([lo, hi]);
    const seconds = (performance.now() - t0) / 1000;
    log(`synthesized ${count} images in ${seconds.toFixed(0)} s -> ${dir} (grid.png to look at)`);
    let agree = 0;
    for (let b = 0; b < batches; b++) {
      const B = config.batchSize;
      agree +=
        hitsByBatch[b] ??
        hitsOf(pixels.subarray(b * B * per, (b + 1) * B * per), labels.subarray(b * B, (b + 1) * B));
    }
    const done = await distillOnSynthetic(ctx, { pixels, labels, count, dir });
    return {
      ...done,
      extra: {
        synthetic: {
          images: count,
          realTrainingImages: 0,
          seconds,
          // The teacher's top-1 on the synthesized images against the classes they were made for.
          teacherAgreement: (100 * agree) / count,
          dir,
        },
      },
    };
  },
};
