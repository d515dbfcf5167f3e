import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import {
  ft,
  ftLoss,
  ftReconstructionLoss,
  type ParaphraserWeights,
  paraphraserWeights,
  type TranslatorWeights,
  translatorWeights,
} from '../../../src/distill/losses/ft.js';
import { buildOfflineTask, type OfflineTask, parseTerms } from '../../../src/distill/schemes/offline.js';
import { buildModel } from '../../../src/models/index.js';
import { SGD } from '../../../src/train/optimizers.js';
import { assertClose, fixtureSection } from './golden.js';

/** PyTorch layouts: maps NCHW, kernels OIHW (the decoder's in conv form). */
interface FtCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  ck: number;
  p1: number | null;
  /** Absent: 1 (the paper's L1). */
  p2?: number;
  student: number[];
  teacher: number[];
  para_kernels: number[][];
  para_biases: number[][];
  tr_kernels: number[][];
  tr_biases: number[][];
  tr_gammas: number[][];
  tr_betas: number[][];
  rec_loss: number;
  grad_para_kernels: number[][];
  grad_para_biases: number[][];
  loss: number;
  grad_student: number[];
  grad_tr_kernels: number[][];
  grad_tr_biases: number[][];
  grad_tr_gammas: number[][];
  grad_tr_betas: number[][];
}
const cases = fixtureSection<FtCase[]>('contrastive.json', 'ft');

const s4 = (s: number[]) => s as [number, number, number, number];
const nhwc = (d: number[], s: number[]) => tf.transpose(tf.tensor4d(d, s4(s)), [0, 2, 3, 1]) as tf.Tensor4D;
const hwio = (d: number[], o: number, i: number) =>
  tf.transpose(tf.tensor4d(d, [o, i, 3, 3]), [2, 3, 1, 0]) as tf.Tensor4D;

/** (in, out) channels of the paraphraser's six convs and the translator's three. */
function io(c: FtCase) {
  const [cs, ct, ck] = [c.student_shape[1]!, c.teacher_shape[1]!, c.ck];
  return {
    para: [
      [ct, ct],
      [ct, ck],
      [ck, ck],
      [ck, ck],
      [ck, ct],
      [ct, ct],
    ] as [number, number][],
    tr: [
      [cs, cs],
      [cs, ck],
      [ck, ck],
    ] as [number, number][],
  };
}

function load(c: FtCase) {
  const { para, tr } = io(c);
  return {
    s: nhwc(c.student, c.student_shape),
    t: nhwc(c.teacher, c.teacher_shape),
    para: {
      kernels: c.para_kernels.map((k, i) => hwio(k, para[i]![1], para[i]![0])),
      biases: c.para_biases.map((b) => tf.tensor1d(b)),
    } as ParaphraserWeights,
    tr: {
      kernels: c.tr_kernels.map((k, i) => hwio(k, tr[i]![1], tr[i]![0])),
      biases: c.tr_biases.map((b) => tf.tensor1d(b)),
      gammas: c.tr_gammas.map((b) => tf.tensor1d(b)),
      betas: c.tr_betas.map((b) => tf.tensor1d(b)),
    } as TranslatorWeights,
  };
}

const flatTr = (w: TranslatorWeights) => [...w.kernels, ...w.biases, ...w.gammas, ...w.betas];
const asTr = (w: tf.Tensor[]): TranslatorWeights => ({
  kernels: w.slice(0, 3) as tf.Tensor4D[],
  biases: w.slice(3, 6) as tf.Tensor1D[],
  gammas: w.slice(6, 9) as tf.Tensor1D[],
  betas: w.slice(9, 12) as tf.Tensor1D[],
});

for (const backend of ['cpu', 'native']) {
  describe(`FT vs PyTorch (Kim et al. / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: reconstruction and factor loss, values and gradients (student, every part weight)`, async () => {
        await tf.setBackend(backend);
        const { s, t, para, tr } = load(c);
        const { para: pio, tr: tio } = io(c);
        const rec = (...w: tf.Tensor[]) =>
          ftReconstructionLoss(t, {
            kernels: w.slice(0, 6) as tf.Tensor4D[],
            biases: w.slice(6) as tf.Tensor1D[],
          });
        assertClose(await rec(...para.kernels, ...para.biases).data(), [c.rec_loss], 'reconstruction loss');
        const gp = tf.grads(rec)([...para.kernels, ...para.biases]);
        for (let i = 0; i < 6; i++) {
          const want = hwio(c.grad_para_kernels[i]!, pio[i]![1], pio[i]![0]);
          assertClose(await gp[i]!.data(), await want.data(), `d rec / d paraphraser kernel ${i}`);
          assertClose(await gp[6 + i]!.data(), c.grad_para_biases[i]!, `d rec / d paraphraser bias ${i}`);
        }

        const f = (x: tf.Tensor, ...w: tf.Tensor[]) =>
          ftLoss(x as tf.Tensor4D, t, para, asTr(w), c.p1, c.p2 ?? 1);
        assertClose(await f(s, ...flatTr(tr)).data(), [c.loss], 'factor loss');
        const g = tf.grads(f)([s, ...flatTr(tr)]);
        assertClose(await g[0]!.data(), await nhwc(c.grad_student, c.student_shape).data(), 'd / d student');
        for (let i = 0; i < 3; i++) {
          const want = hwio(c.grad_tr_kernels[i]!, tio[i]![1], tio[i]![0]);
          assertClose(await g[1 + i]!.data(), await want.data(), `d / d translator kernel ${i}`);
          assertClose(await g[4 + i]!.data(), c.grad_tr_biases[i]!, `d / d translator bias ${i}`);
          assertClose(await g[7 + i]!.data(), c.grad_tr_gammas[i]!, `d / d translator gamma ${i}`);
          assertClose(await g[10 + i]!.data(), c.grad_tr_betas[i]!, `d / d translator beta ${i}`);
        }
      });
    }
  });
}

describe('FT descriptor', () => {
  const data = { numExamples: 1, numClasses: 10, batchSize: 8, seed: 0 };
  const c = cases.find((k) => k.p1 !== null)!;
  const shapesOf = (x: tf.Tensor4D, y: tf.Tensor4D) => ({
    student: { feat: x.shape.slice(1) },
    teacher: { feat: y.shape.slice(1) },
  });
  const ctxFor = <P>(
    config: P,
    s: tf.Tensor4D,
    t: tf.Tensor4D,
    parts: ReturnType<NonNullable<typeof ft.parts>>,
  ) => {
    const logits = tf.zeros([s.shape[0], 10]) as tf.Tensor2D;
    return {
      config,
      student: { logits, features: { feat: s } },
      teacher: { logits, features: { feat: t } },
      labels: tf.zeros([s.shape[0]], 'int32') as tf.Tensor1D,
      epoch: 0,
      indices: new Uint32Array(s.shape[0]),
      parts,
    };
  };

  it('defaults: translator mode, rate 0.5, the paper factor (p1 null); strict', () => {
    assert.deepEqual(ft.schema.parse({}), { mode: 'translator', rate: 0.5, p1: null, p2: 1 });
    assert.throws(() => ft.schema.parse({ mode: 'both' }));
    assert.throws(() => ft.schema.parse({ k: 0.5 }));
  });

  it('parts sized from the taps; both modes through the descriptor equal the pure functions', async () => {
    await tf.setBackend('native');
    const { s, t, para, tr } = load(c);
    const parts = ft.parts!(shapesOf(s, t), ft.schema.parse({}), data);
    const p = paraphraserWeights(parts.paraphraser);
    const w = translatorWeights(parts.translator);
    assert.deepEqual(p.kernels[1]!.shape, para.kernels[1]!.shape);
    assert.deepEqual(w.kernels[2]!.shape, tr.kernels[2]!.shape);
    const pairs: [tf.Tensor, tf.Tensor][] = [
      ...[...p.kernels, ...p.biases].map(
        (v, i) => [v, [...para.kernels, ...para.biases][i]!] as [tf.Tensor, tf.Tensor],
      ),
      ...flatTr(w).map((v, i) => [v, flatTr(tr)[i]!] as [tf.Tensor, tf.Tensor]),
    ];
    for (const [v, value] of pairs) (v as tf.Variable).assign(value);
    const recCfg = ft.schema.parse({ mode: 'paraphraser' });
    assertClose(await ft.loss(ctxFor(recCfg, s, t, parts)).data(), [c.rec_loss], 'paraphraser mode');
    const cfg = ft.schema.parse({ p1: c.p1 });
    assertClose(await ft.loss(ctxFor(cfg, s, t, parts)).data(), [c.loss], 'translator mode');
    // p2 reaches the loss through the descriptor.
    const c2 = cases.find((k) => k.p2 === 2)!;
    const l2 = load(c2);
    const parts2 = ft.parts!(shapesOf(l2.s, l2.t), ft.schema.parse({}), data);
    const p2w = [
      ...paraphraserWeights(parts2.paraphraser).kernels,
      ...paraphraserWeights(parts2.paraphraser).biases,
      ...flatTr(translatorWeights(parts2.translator)),
    ];
    const p2v = [...l2.para.kernels, ...l2.para.biases, ...flatTr(l2.tr)];
    for (const [i, v] of p2w.entries()) (v as tf.Variable).assign(p2v[i]!);
    const cfg2 = ft.schema.parse({ p1: c2.p1, p2: 2 });
    assertClose(await ft.loss(ctxFor(cfg2, l2.s, l2.t, parts2)).data(), [c2.loss], 'translator mode, p2 = 2');
  });

  it('translator mode leaves the paraphraser out of the gradients: SGD with weight decay does not move it', async () => {
    await tf.setBackend('native');
    const s = tf.randomNormal([2, 4, 4, 6], 0, 1, 'float32', 1) as tf.Tensor4D;
    const t = tf.randomNormal([2, 4, 4, 8], 0, 1, 'float32', 2) as tf.Tensor4D;
    const parts = ft.parts!(shapesOf(s, t), ft.schema.parse({}), data);
    const vars = [parts.paraphraser, parts.translator].flatMap((m) =>
      m.trainableWeights.map((v) => v.read() as tf.Variable),
    );
    const ctx = ctxFor(ft.schema.parse({}), s, t, parts);
    const { grads } = tf.variableGrads(() => ft.loss(ctx), vars);
    assert.ok(!Object.keys(grads).some((k) => k.includes('paraphraser')), Object.keys(grads).join(', '));
    assert.ok(Object.keys(grads).some((k) => k.includes('translator')));
    const snapshot = (m: typeof parts.paraphraser) => m.weights.map((v) => Array.from(v.read().dataSync()));
    const [pBefore, tBefore] = [snapshot(parts.paraphraser), snapshot(parts.translator)];
    const sgd = new SGD({ lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
    for (let i = 0; i < 2; i++) sgd.minimize(() => ft.loss(ctx), false, vars);
    assert.deepEqual(snapshot(parts.paraphraser), pBefore, 'paraphraser unchanged');
    assert.notDeepEqual(snapshot(parts.translator), tBefore, 'translator trained');
  });

  it('two stages as the trainer runs them: the paraphraser trains alone, then stays fixed under the translator', async () => {
    await tf.setBackend('native');
    const opts = { inputShape: [28, 28, 1] as [number, number, number], numClasses: 10 };
    const student = buildModel('resnet8', { ...opts, seed: 1 });
    const teacher = buildModel('resnet8', { ...opts, seed: 2 });
    const taps = { student: { feat: 'layer3.0.relu_out' }, teacher: { feat: 'layer3.0.relu_out' } };
    const info = { numExamples: 8, numClasses: 10, batchSize: 8, seed: 1 };
    const input = {
      x: tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D,
      y: tf.tensor1d([0, 1, 2, 3], 'int32') as tf.Tensor1D,
      index: Uint32Array.from([0, 1, 2, 3]),
      epoch: 0,
    };
    const step = (task: OfflineTask) => {
      // As fit(): every trainable weight of the student and of all parts, SGD with weight decay.
      const vars = [task.model, ...(task.parts ?? [])].flatMap((m) =>
        m.trainableWeights.map((w) => w.read() as tf.Variable),
      );
      task.prepare?.(input);
      new SGD({ lr: 0.01, momentum: 0.9, weightDecay: 5e-4 }).minimize(
        () => task.loss(input).total,
        false,
        vars,
      );
      task.release?.();
    };
    const snap = (m: { trainableWeights: { read(): tf.Tensor }[] }) =>
      m.trainableWeights.map((w) => Array.from(w.read().dataSync()));
    const init = buildOfflineTask({
      student,
      teacher,
      terms: parseTerms([{ name: 'ft', weight: 1, mode: 'paraphraser', taps }], 'stage 1'),
      data: info,
    });
    const parts = init.partsByTerm['ft'] as ReturnType<NonNullable<typeof ft.parts>>;
    let before = [snap(student), snap(parts.paraphraser), snap(parts.translator)];
    step(init);
    assert.deepEqual(snap(student), before[0], 'stage 1: the student is untouched');
    assert.notDeepEqual(snap(parts.paraphraser), before[1], 'stage 1: the paraphraser trains');
    assert.deepEqual(snap(parts.translator), before[2], 'stage 1: the translator waits');

    const main = buildOfflineTask({
      student,
      teacher,
      terms: parseTerms(
        [
          { name: 'ce', weight: 1 },
          { name: 'ft', weight: 200, p1: 2, taps },
        ],
        'stage 2',
      ),
      data: info,
      existingParts: init.partsByTerm,
    });
    assert.equal(main.partsByTerm['ft'], init.partsByTerm['ft'], 'same parts for the same label');
    before = [snap(student), snap(parts.paraphraser), snap(parts.translator)];
    step(main);
    assert.notDeepEqual(snap(student), before[0], 'stage 2: the student trains');
    assert.deepEqual(snap(parts.paraphraser), before[1], 'stage 2: the paraphraser is frozen');
    assert.notDeepEqual(snap(parts.translator), before[2], 'stage 2: the translator trains');
  });

  it('bad inputs name the method and the shapes', () => {
    const { s, t, para, tr } = load(c);
    const wide = tf.zeros([s.shape[0], s.shape[1], s.shape[2], s.shape[3] + 1]) as tf.Tensor4D;
    assert.throws(
      () => ftLoss(wide, t, para, tr),
      new RegExp(
        `ftLoss: the translator takes ${s.shape[3]} channels, got a map \\[${wide.shape.join(', ')}\\]`,
      ),
    );
    assert.throws(() => ftLoss(s, tf.zeros([3, 4]) as never, para, tr), /ftLoss: expected feature maps/);
    assert.throws(
      () => ft.parts!({ student: { feat: [6] }, teacher: { feat: [8] } }, ft.schema.parse({}), data),
      /ft: the 'feat' taps must be feature maps \[H, W, C\], got \[6\] and \[8\]/,
    );
  });
});
