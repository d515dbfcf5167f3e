import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import {
  ft,
  ftLoss,
  ftReconstructionLoss,
  paraphraserWeights,
  translatorWeights,
} from '../../../src/distill/losses/ft.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases } from './methods-golden.js';

interface FtCase {
  name: string;
  student_shape: number[];
  teacher_shape: number[];
  ck: number;
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
const cases = methodCases<FtCase>('ft');
const s4 = (s: number[]) => s as [number, number, number, number];

for (const backend of BACKENDS) {
  describe(`FT vs PyTorch (Kim et al. / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: paraphraser reconstruction and factor transfer, values and gradients`, async () => {
        await tf.setBackend(backend);
        const cs = c.student_shape[3]!;
        const ct = c.teacher_shape[3]!;
        const ck = c.ck;
        const s = tf.tensor4d(c.student, s4(c.student_shape));
        const t = tf.tensor4d(c.teacher, s4(c.teacher_shape));
        const pio: [number, number][] = [
          [ct, ct],
          [ct, ck],
          [ck, ck],
          [ck, ck],
          [ck, ct],
          [ct, ct],
        ];
        const pk = c.para_kernels.map((k, i) => tf.tensor4d(k, [3, 3, ...pio[i]!]));
        const pb = c.para_biases.map((b) => tf.tensor1d(b));
        const rec = (...xs: tf.Tensor[]) =>
          ftReconstructionLoss(t, {
            kernels: xs.slice(0, 6) as tf.Tensor4D[],
            biases: xs.slice(6) as tf.Tensor1D[],
          });
        assertClose(await rec(...pk, ...pb).data(), [c.rec_loss], 'reconstruction loss');
        const gp = tf.grads(rec)([...pk, ...pb]);
        for (let i = 0; i < 6; i++) {
          assertClose(await gp[i]!.data(), c.grad_para_kernels[i]!, `d rec / d kernel${i}`);
          assertClose(await gp[6 + i]!.data(), c.grad_para_biases[i]!, `d rec / d bias${i}`);
        }
        const tio: [number, number][] = [
          [cs, cs],
          [cs, ck],
          [ck, ck],
        ];
        const tk = c.tr_kernels.map((k, i) => tf.tensor4d(k, [3, 3, ...tio[i]!]));
        const tw = [
          ...tk,
          ...[c.tr_biases, c.tr_gammas, c.tr_betas].flatMap((l) => l.map((v) => tf.tensor1d(v))),
        ];
        const para = { kernels: pk as tf.Tensor4D[], biases: pb as tf.Tensor1D[] };
        const f = (x: tf.Tensor, ...w: tf.Tensor[]) =>
          ftLoss(x as tf.Tensor4D, t, para, {
            kernels: w.slice(0, 3) as tf.Tensor4D[],
            biases: w.slice(3, 6) as tf.Tensor1D[],
            gammas: w.slice(6, 9) as tf.Tensor1D[],
            betas: w.slice(9, 12) as tf.Tensor1D[],
          });
        assertClose(await f(s, ...tw).data(), [c.loss], 'factor loss');
        const g = tf.grads(f)([s, ...tw]);
        assertClose(await g[0]!.data(), c.grad_student, 'd / d student');
        const want = [...c.grad_tr_kernels, ...c.grad_tr_biases, ...c.grad_tr_gammas, ...c.grad_tr_betas];
        for (const [i, w] of want.entries())
          assertClose(await g[1 + i]!.data(), w, `d / d translator weight ${i}`);
      });
    }
  });
}

describe('FT descriptor', () => {
  it('defaults (translator mode, rate 0.5); parts sized from the taps; the paraphraser gets no gradient in translator mode', async () => {
    await tf.setBackend('native');
    assert.deepEqual(ft.schema.parse({}), { mode: 'translator', rate: 0.5 });
    const parts = ft.parts!(
      { student: { feat: [4, 4, 6] }, teacher: { feat: [4, 4, 8] } },
      ft.schema.parse({}),
      { numExamples: 1, numClasses: 10, seed: 0 },
    );
    const p = paraphraserWeights(parts.paraphraser);
    const tr = translatorWeights(parts.translator);
    assert.deepEqual(p.kernels[1]!.shape, [3, 3, 8, 4]);
    assert.deepEqual(tr.kernels[2]!.shape, [3, 3, 4, 4]);
    const s = tf.randomNormal([2, 4, 4, 6]) as tf.Tensor4D;
    const t = tf.randomNormal([2, 4, 4, 8]) as tf.Tensor4D;
    const g = tf.grads((k: tf.Tensor, tk: tf.Tensor) =>
      ftLoss(
        s,
        t,
        { ...p, kernels: [k as tf.Tensor4D, ...p.kernels.slice(1)] },
        { ...tr, kernels: [tk as tf.Tensor4D, ...tr.kernels.slice(1)] },
      ),
    )([p.kernels[0]!, tr.kernels[0]!]);
    assert.equal(tf.max(tf.abs(g[0]!)).dataSync()[0], 0, 'frozen paraphraser');
    assert.ok(tf.max(tf.abs(g[1]!)).dataSync()[0]! > 0, 'translator trains');
    assert.throws(() => ft.schema.parse({ mode: 'both' }));
  });
});
