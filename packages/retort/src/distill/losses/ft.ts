/**
 * FT: Kim, Park and Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
 * NeurIPS 2018. The teacher's feature map is first "paraphrased": an auto-encoder (the paraphraser)
 * is trained on it to reconstruct it through a narrower factor (rate 0.5 of the channels); then a
 * translator on the student produces a factor of the same size, and the student + translator are
 * trained to match the frozen paraphraser's factor: mean |normalize(F_s) - normalize(F_t)| over
 * the flattened, L2-normalised factors (p = 1). RepDistiller's beta is 200.
 *
 * One method, two modes, so that both stages share a term label and hence the parts:
 * `mode: paraphraser` (the initialisation stage: reconstruction MSE, trains the paraphraser only)
 * and `mode: translator` (the distillation stage). Architecture as RepDistiller: 3x3 convs with
 * LeakyReLU(0.1); the paraphraser without BN (its decoder's stride-1 transposed convs are written
 * as convs, the same function class), the translator with batch-statistics BN.
 *
 * The factor F is the flattened map, as in the paper. RepDistiller's FactorTransfer(p1 = 2) first
 * reduces it to the channel mean of f^p1 (an attention-like [H, W] map), which is what its beta 200
 * was tuned on; `p1: 2` selects that. `p2` is the exponent of the difference (RepDistiller's p2):
 * 1, the paper's L1, by default; 2 a squared error; mean over rows and elements of |d|^p2.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { batchStatNorm, checkMaps, flattenRows, l2Normalize, matchSpatial } from './feature-ops.js';
import { partWeight, torchUniform, weightPart } from './parts.js';
import { detach, type LossDescriptor, type TapShapes } from './types.js';

export const ftSchema = z.strictObject({
  /** 'paraphraser': train the teacher's auto-encoder; 'translator': factor transfer to the student. */
  mode: z.enum(['paraphraser', 'translator']).default('translator'),
  /** Factor channels as a fraction of the teacher's (RepDistiller's k). */
  rate: z.number().positive().max(1).default(0.5),
  /** null: F = the flattened factor (the paper); p: F = mean over channels of f^p (RepDistiller's p1). */
  p1: z.number().int().positive().nullable().default(null),
  /** Exponent of the factors' difference: mean |d|^p2 (1: the paper's L1). */
  p2: z.number().int().positive().default(1),
});
export type FtConfig = z.output<typeof ftSchema>;

export interface ParaphraserWeights {
  /** Six 3x3 kernels (HWIO): encoder 0..2, decoder 3..5; six biases. */
  kernels: tf.Tensor4D[];
  biases: tf.Tensor1D[];
}
export interface TranslatorWeights {
  kernels: tf.Tensor4D[];
  biases: tf.Tensor1D[];
  gammas: tf.Tensor1D[];
  betas: tf.Tensor1D[];
}

const leaky = (x: tf.Tensor) => tf.leakyRelu(x, 0.1);
const conv = (x: tf.Tensor4D, k: tf.Tensor4D, b: tf.Tensor1D) =>
  tf.add(tf.conv2d(x, k, 1, 'same'), b) as tf.Tensor4D;

export function paraphraserEncode(t: tf.Tensor4D, w: ParaphraserWeights): tf.Tensor4D {
  let x = t;
  for (let i = 0; i < 3; i++) x = leaky(conv(x, w.kernels[i]!, w.biases[i]!)) as tf.Tensor4D;
  return x;
}

function paraphraserDecode(f: tf.Tensor4D, w: ParaphraserWeights): tf.Tensor4D {
  let x = f;
  for (let i = 3; i < 6; i++) x = leaky(conv(x, w.kernels[i]!, w.biases[i]!)) as tf.Tensor4D;
  return x;
}

/** Throws unless `kernel` (HWIO) takes the channels of `map` [N, H, W, C]. */
function checkInput(where: string, part: string, map: tf.Tensor4D, kernel: tf.Tensor4D | undefined): void {
  if (kernel?.shape[2] !== map.shape[3])
    throw new Error(
      `${where}: the ${part} takes ${kernel?.shape[2]} channels, got a map [${map.shape.join(', ')}]`,
    );
}

/** The paraphraser's reconstruction MSE on the (detached) teacher map. */
export function ftReconstructionLoss(teacher: tf.Tensor4D, w: ParaphraserWeights): tf.Scalar {
  checkMaps('ftReconstructionLoss', [teacher]);
  checkInput('ftReconstructionLoss', 'paraphraser', teacher, w.kernels[0]);
  return tf.tidy(() => {
    const t = detach(teacher);
    return tf.mean(tf.squaredDifference(paraphraserDecode(paraphraserEncode(t, w), w), t)) as tf.Scalar;
  });
}

export function translate(s: tf.Tensor4D, w: TranslatorWeights): tf.Tensor4D {
  let x = s;
  for (let i = 0; i < 3; i++)
    x = leaky(batchStatNorm(conv(x, w.kernels[i]!, w.biases[i]!), w.gammas[i]!, w.betas[i]!)) as tf.Tensor4D;
  return x;
}

/**
 * The paraphraser's factor of the teacher map as a constant of the gradient tape. detach() would
 * leave the encoder's ops on the tape and give its weights zero gradients, and SGD's weight decay
 * and momentum would then still move the frozen paraphraser (RepDistiller keeps it out of the
 * optimizer). Ops inside a custom gradient's forward pass are not recorded, so its weights get no
 * gradient at all and the optimizer skips them.
 */
export function frozenFactor(teacher: tf.Tensor4D, para: ParaphraserWeights): tf.Tensor4D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const t = args[0] as tf.Tensor4D;
    return { value: paraphraserEncode(t, para), gradFunc: () => tf.zerosLike(t) };
  });
  return f(teacher) as tf.Tensor4D;
}

/** A factor map [N, H, W, C] as rows: flattened, or the channel mean of f^p1 flattened. */
function factorRows(f: tf.Tensor4D, p1: number | null): tf.Tensor2D {
  if (p1 === null) return flattenRows(f);
  return flattenRows(tf.mean(p1 === 2 ? tf.square(f) : tf.pow(f, p1), 3));
}

/** mean |normalize(F(translator(s))) - normalize(F(encoder(t)))| with the paraphraser frozen. */
export function ftLoss(
  student: tf.Tensor4D,
  teacher: tf.Tensor4D,
  para: ParaphraserWeights,
  tr: TranslatorWeights,
  p1: number | null = null,
  p2 = 1,
): tf.Scalar {
  checkMaps('ftLoss', [student, teacher]);
  checkInput('ftLoss', 'translator', student, tr.kernels[0]);
  checkInput('ftLoss', 'paraphraser', teacher, para.kernels[0]);
  return tf.tidy(() => {
    const ft = frozenFactor(detach(teacher), para);
    const [fs, ftm] = matchSpatial(translate(student, tr), ft);
    if (fs.shape[3] !== ftm.shape[3])
      throw new Error(
        `ftLoss: translator gives ${fs.shape[3]} channels, the paraphraser's factor ${ftm.shape[3]}`,
      );
    const rows = (f: tf.Tensor4D) => l2Normalize(factorRows(f, p1));
    const d = tf.abs(tf.sub(rows(fs), rows(ftm)));
    return tf.mean(p2 === 1 ? d : p2 === 2 ? tf.square(d) : tf.pow(d, p2)) as tf.Scalar;
  });
}

function convSpecs(prefix: string, pairs: [number, number][]) {
  return pairs.flatMap(([cin, cout], i) => [
    { name: `${prefix}k${i}`, shape: [3, 3, cin, cout], init: torchUniform(cin * 9) },
    { name: `${prefix}b${i}`, shape: [cout], init: torchUniform(cin * 9) },
  ]);
}

export type FtParts = { readonly paraphraser: LayersModel; readonly translator: LayersModel };

function makeParts(shapes: TapShapes<'feat'>, cfg: FtConfig): FtParts {
  const cs = shapes.student.feat.at(-1)!;
  const ct = shapes.teacher.feat.at(-1)!;
  if (shapes.student.feat.length !== 3 || shapes.teacher.feat.length !== 3)
    throw new Error(
      `ft: the 'feat' taps must be feature maps [H, W, C], got [${shapes.student.feat.join(', ')}] and [${shapes.teacher.feat.join(', ')}]`,
    );
  const ck = Math.max(1, Math.floor(ct * cfg.rate));
  return {
    paraphraser: weightPart(
      'ft_paraphraser',
      convSpecs('p', [
        [ct, ct],
        [ct, ck],
        [ck, ck],
        [ck, ck],
        [ck, ct],
        [ct, ct],
      ]),
    ),
    translator: weightPart('ft_translator', [
      ...convSpecs('t', [
        [cs, cs],
        [cs, ck],
        [ck, ck],
      ]),
      ...[cs, ck, ck].flatMap((c, i) => [
        { name: `tg${i}`, shape: [c], init: initializers.ones() },
        { name: `tbeta${i}`, shape: [c], init: initializers.zeros() },
      ]),
    ]),
  };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

export function paraphraserWeights(part: LayersModel): ParaphraserWeights {
  return {
    kernels: range(6).map((i) => partWeight(part, `pk${i}`) as tf.Tensor4D),
    biases: range(6).map((i) => partWeight(part, `pb${i}`) as tf.Tensor1D),
  };
}

export function translatorWeights(part: LayersModel): TranslatorWeights {
  return {
    kernels: range(3).map((i) => partWeight(part, `tk${i}`) as tf.Tensor4D),
    biases: range(3).map((i) => partWeight(part, `tb${i}`) as tf.Tensor1D),
    gammas: range(3).map((i) => partWeight(part, `tg${i}`) as tf.Tensor1D),
    betas: range(3).map((i) => partWeight(part, `tbeta${i}`) as tf.Tensor1D),
  };
}

export const ft: LossDescriptor<FtConfig, 'feat', FtParts> = {
  name: 'ft',
  paper: {
    title: 'Paraphrasing Complex Network: Network Compression via Factor Transfer',
    authors: 'Jangho Kim, SeongUk Park, Nojun Kwak',
    venue: 'NeurIPS',
    year: 2018,
  },
  schema: ftSchema,
  needs: { taps: { student: ['feat'], teacher: ['feat'] } },
  parts: (shapes, cfg) => makeParts(shapes, cfg),
  loss: (ctx) =>
    ctx.config.mode === 'paraphraser'
      ? ftReconstructionLoss(
          ctx.teacher.features.feat as tf.Tensor4D,
          paraphraserWeights(ctx.parts.paraphraser),
        )
      : ftLoss(
          ctx.student.features.feat as tf.Tensor4D,
          ctx.teacher.features.feat as tf.Tensor4D,
          paraphraserWeights(ctx.parts.paraphraser),
          translatorWeights(ctx.parts.translator),
          ctx.config.p1,
          ctx.config.p2,
        ),
};
