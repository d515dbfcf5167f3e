import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import { crd, crdBankRows, crdIndices, crdLoss } from '../../../src/distill/losses/crd.js';
import { partWeight } from '../../../src/distill/losses/parts.js';
import { assertClose } from './golden.js';
import { BACKENDS, methodCases } from './methods-golden.js';

interface CrdCase {
  name: string;
  n: number;
  ds: number;
  dt: number;
  d: number;
  n_data: number;
  k: number;
  student: number[];
  teacher: number[];
  ws: number[];
  bs: number[];
  wt: number[];
  bt: number[];
  mem_s: number[];
  mem_t: number[];
  idx: number[];
  z: [number, number];
  loss: number;
  grad_student: number[];
  grad_ws: number[];
  grad_bs: number[];
  grad_wt: number[];
  grad_bt: number[];
  new_mem_s_rows: number[];
  new_mem_t_rows: number[];
}
const cases = methodCases<CrdCase>('crd');

for (const backend of BACKENDS) {
  describe(`CRD vs PyTorch (Tian et al. / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: Z estimate, value, gradients (student, both embeddings), bank update`, async () => {
        await tf.setBackend(backend);
        const s = tf.tensor2d(c.student, [c.n, c.ds]);
        const t = tf.tensor2d(c.teacher, [c.n, c.dt]);
        const w = [
          tf.tensor2d(c.ws, [c.ds, c.d]),
          tf.tensor1d(c.bs),
          tf.tensor2d(c.wt, [c.dt, c.d]),
          tf.tensor1d(c.bt),
        ];
        const banks = {
          memS: tf.tensor2d(c.mem_s, [c.n_data, c.d]),
          memT: tf.tensor2d(c.mem_t, [c.n_data, c.d]),
        };
        const idx = tf.tensor2d(c.idx, [c.n, c.k + 1], 'int32');
        const run = (
          x: tf.Tensor,
          a: tf.Tensor,
          b: tf.Tensor,
          d: tf.Tensor,
          e: tf.Tensor,
          z: [number, number] | null,
        ) =>
          crdLoss(
            x,
            t,
            { ws: a as tf.Tensor2D, bs: b as tf.Tensor1D, wt: d as tf.Tensor2D, bt: e as tf.Tensor1D },
            banks,
            idx,
            z,
            { nceT: 0.07 },
          );
        const first = run(s, w[0]!, w[1]!, w[2]!, w[3]!, null);
        assertClose(first.z, c.z, `${c.name} Z`);
        assertClose(await first.loss.data(), [c.loss], `${c.name} loss`);
        const grads = tf.grads((x, a, b, d, e) => run(x!, a!, b!, d!, e!, c.z).loss)([s, ...w]);
        const want = [c.grad_student, c.grad_ws, c.grad_bs, c.grad_wt, c.grad_bt];
        for (const [i, g] of want.entries())
          assertClose(await grads[i]!.data(), g, `${c.name} gradient ${i}`);
        const index = tf.tensor1d(
          c.idx.filter((_, i) => i % (c.k + 1) === 0),
          'int32',
        );
        assertClose(
          await crdBankRows(banks.memS, index, first.embS, 0.5).data(),
          c.new_mem_s_rows,
          `${c.name} student bank rows`,
        );
        assertClose(
          await crdBankRows(banks.memT, index, first.embT, 0.5).data(),
          c.new_mem_t_rows,
          `${c.name} teacher bank rows`,
        );
      });
    }
  });
}

describe('CRD descriptor', () => {
  const data = { numExamples: 50, numClasses: 10, seed: 7 };
  it('defaults (feat_dim 128, nce_k 16384, nce_t 0.07, nce_m 0.5) and needs indices', () => {
    assert.deepEqual(crd.schema.parse({}), { featDim: 128, nceK: 16384, nceT: 0.07, nceM: 0.5 });
    assert.equal(crd.needs.indices, true);
  });

  it('negatives are deterministic per (seed, epoch, example), in range, with the positive first', async () => {
    const a = await crdIndices(Uint32Array.from([3, 9]), 5, 50, 1, 0).data();
    const b = await crdIndices(Uint32Array.from([9, 3]), 5, 50, 1, 0).data();
    assert.deepEqual(Array.from(a.slice(0, 6)), Array.from(b.slice(6, 12)), 'same example, same draws');
    assert.equal(a[0], 3);
    assert.ok(Array.from(a).every((v) => v >= 0 && v < 50));
    const c = await crdIndices(Uint32Array.from([3, 9]), 5, 50, 1, 1).data();
    assert.notDeepEqual(Array.from(a), Array.from(c), 'another epoch draws other negatives');
  });

  it('a step through the descriptor estimates Z once and moves the bank rows of the batch only', async () => {
    await tf.setBackend('native');
    const cfg = crd.schema.parse({ featDim: 8, nceK: 10 });
    const parts = crd.parts!({ student: { feat: [6] }, teacher: { feat: [5] } }, cfg, data);
    const memS = partWeight(parts.crd, 'mem_s');
    const before = memS.dataSync().slice();
    const logits = tf.zeros([3, 10]) as tf.Tensor2D;
    const ctx = {
      config: cfg,
      student: { logits, features: { feat: tf.randomNormal([3, 6]) } },
      teacher: { logits, features: { feat: tf.randomNormal([3, 5]) } },
      labels: tf.zeros([3], 'int32') as tf.Tensor1D,
      epoch: 0,
      indices: Uint32Array.from([1, 4, 7]),
      parts,
    };
    const loss = crd.loss(ctx);
    assert.ok(Number.isFinite((await loss.data())[0]!));
    const z = partWeight(parts.crd, 'z').dataSync();
    assert.ok(z[0]! > 0 && z[1]! > 0, 'Z estimated');
    const after = memS.dataSync();
    for (let row = 0; row < 50; row++) {
      const moved = after.slice(row * 8, row * 8 + 8).some((v, j) => v !== before[row * 8 + j]);
      assert.equal(moved, [1, 4, 7].includes(row), `row ${row}`);
    }
    crd.loss(ctx);
    assert.deepEqual(Array.from(partWeight(parts.crd, 'z').dataSync()), Array.from(z), 'Z stays fixed');
  });

  it('refuses a run without the training set size', () => {
    assert.throws(
      () =>
        crd.parts!({ student: { feat: [6] }, teacher: { feat: [5] } }, crd.schema.parse({}), {
          ...data,
          numExamples: 0,
        }),
      /crd: needs the training set size/,
    );
  });
});
