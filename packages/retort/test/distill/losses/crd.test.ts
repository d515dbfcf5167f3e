import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { type CrdWeights, crd, crdBankRows, crdIndices, crdLoss } from '../../../src/distill/losses/crd.js';
import { partWeight } from '../../../src/distill/losses/parts.js';
import { assertClose, fixtureSection } from './golden.js';

/** PyTorch layouts: features NCHW (or [N, C]), Linear weights [out, in]. */
interface CrdCase {
  name: string;
  student_shape: number[];
  dt: number;
  d: number;
  n_data: number;
  k: number;
  T: number;
  m: number;
  z_given: boolean;
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
const cases = fixtureSection<CrdCase[]>('contrastive.json', 'crd');

/** NCHW -> NHWC for maps; vectors as they are. */
function features(data: number[], shape: number[]): tf.Tensor {
  if (shape.length === 4)
    return tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), [0, 2, 3, 1]);
  return tf.tensor(data, shape);
}

function load(c: CrdCase) {
  const n = c.student_shape[0]!;
  const ds = c.student_shape.slice(1).reduce((a, b) => a * b, 1);
  const linear = (w: number[], din: number) => tf.transpose(tf.tensor2d(w, [c.d, din])) as tf.Tensor2D;
  return {
    n,
    s: features(c.student, c.student_shape),
    t: tf.tensor2d(c.teacher, [n, c.dt]),
    w: {
      ws: linear(c.ws, ds),
      bs: tf.tensor1d(c.bs),
      wt: linear(c.wt, c.dt),
      bt: tf.tensor1d(c.bt),
    } as CrdWeights,
    banks: { memS: tf.tensor2d(c.mem_s, [c.n_data, c.d]), memT: tf.tensor2d(c.mem_t, [c.n_data, c.d]) },
    idx: tf.tensor2d(c.idx, [n, c.k + 1], 'int32'),
    own: c.idx.filter((_, i) => i % (c.k + 1) === 0),
  };
}

for (const backend of ['cpu', 'native']) {
  describe(`CRD vs PyTorch (Tian et al. / RepDistiller) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: Z, value, gradients (student, both embeddings), bank update`, async () => {
        await tf.setBackend(backend);
        const { s, t, w, banks, idx, own } = load(c);
        const run = (x: tf.Tensor, v: tf.Tensor[], z: [number, number] | null) =>
          crdLoss(
            x,
            t,
            {
              ws: v[0] as tf.Tensor2D,
              bs: v[1] as tf.Tensor1D,
              wt: v[2] as tf.Tensor2D,
              bt: v[3] as tf.Tensor1D,
            },
            banks,
            idx,
            z,
            { nceT: c.T },
          );
        const first = run(s, [w.ws, w.bs, w.wt, w.bt], c.z_given ? c.z : null);
        assertClose(first.z, c.z, `${c.name} Z`);
        assertClose(await first.loss.data(), [c.loss], `${c.name} loss`);
        // Z is a constant after its estimate (RepDistiller stores it with .item()).
        const grads = tf.grads((x, a, b, d, e) => run(x!, [a!, b!, d!, e!], c.z).loss)([
          s,
          w.ws,
          w.bs,
          w.wt,
          w.bt,
        ]);
        const ds = w.ws.shape[0];
        const want = [
          features(c.grad_student, c.student_shape),
          tf.transpose(tf.tensor2d(c.grad_ws, [c.d, ds])),
          tf.tensor1d(c.grad_bs),
          tf.transpose(tf.tensor2d(c.grad_wt, [c.d, c.dt])),
          tf.tensor1d(c.grad_bt),
        ];
        const names = ['student', 'ws', 'bs', 'wt', 'bt'];
        for (const [i, g] of want.entries())
          assertClose(await grads[i]!.data(), await g.data(), `${c.name} d / d ${names[i]}`);
        const index = tf.tensor1d(own, 'int32');
        const rowsS = crdBankRows(banks.memS, index, first.embS, c.m);
        const rowsT = crdBankRows(banks.memT, index, first.embT, c.m);
        assertClose(await rowsS.data(), c.new_mem_s_rows, `${c.name} student bank rows`);
        assertClose(await rowsT.data(), c.new_mem_t_rows, `${c.name} teacher bank rows`);
      });
    }
  });
}

describe('CRD descriptor', () => {
  const c = cases[0]!;
  const data = { numExamples: c.n_data, numClasses: 10, batchSize: 8, seed: 7 };

  it('defaults (feat_dim 128, nce_k 16384, nce_t 0.07, nce_m 0.5); needs indices and the pooled feature', () => {
    assert.deepEqual(crd.schema.parse({}), { featDim: 128, nceK: 16384, nceT: 0.07, nceM: 0.5 });
    assert.throws(() => crd.schema.parse({ nce_k: 10 }));
    assert.equal(crd.needs.indices, true);
    assert.deepEqual(crd.needs.taps, { student: ['feat'], teacher: ['feat'] });
  });

  it('negatives: the positive first, uniform, deterministic per (seed, epoch, example)', async () => {
    const a = await crdIndices(Uint32Array.from([3, 9]), 5, 50, 1, 0).data();
    const b = await crdIndices(Uint32Array.from([9, 3]), 5, 50, 1, 0).data();
    assert.deepEqual(Array.from(a.slice(0, 6)), Array.from(b.slice(6, 12)), 'same example, same draws');
    assert.equal(a[0], 3);
    assert.equal(a[6], 9);
    const other = async (seed: number, epoch: number) =>
      Array.from(await crdIndices(Uint32Array.from([3, 9]), 5, 50, seed, epoch).data());
    assert.notDeepEqual(Array.from(a), await other(1, 1), 'another epoch draws other negatives');
    assert.notDeepEqual(Array.from(a), await other(2, 0), 'another seed draws other negatives');
    const many = await crdIndices(Uint32Array.from([0]), 20000, 10, 3, 0).data();
    const counts = new Array(10).fill(0);
    for (const v of many.slice(1)) counts[v]++;
    assert.ok(
      counts.every((x) => Math.abs(x - 2000) < 200),
      `about 2000 draws per example: ${counts.join(', ')}`,
    );
  });

  it('a step through the descriptor equals the pure function, fixes Z once and moves only the batch rows', async () => {
    await tf.setBackend('native');
    const { s, t, w, banks, own } = load(c);
    const cfg = crd.schema.parse({ featDim: c.d, nceK: c.k, nceT: c.T, nceM: c.m });
    const parts = crd.parts!({ student: { feat: s.shape.slice(1) }, teacher: { feat: [c.dt] } }, cfg, data);
    const live = (name: string) => partWeight(parts.crd, name);
    live('ws').assign(w.ws);
    live('bs').assign(w.bs);
    live('wt').assign(w.wt);
    live('bt').assign(w.bt);
    live('mem_s').assign(banks.memS);
    live('mem_t').assign(banks.memT);
    const indices = Uint32Array.from(own);
    const epoch = 2;
    const logits = tf.zeros([own.length, 10]) as tf.Tensor2D;
    const ctx = {
      config: cfg,
      student: { logits, features: { feat: s } },
      teacher: { logits, features: { feat: t } },
      labels: tf.zeros([own.length], 'int32') as tf.Tensor1D,
      epoch,
      indices,
      parts,
    };
    const idx = crdIndices(indices, c.k, c.n_data, data.seed, epoch);
    const pure = crdLoss(s, t, w, banks, idx, null, cfg);
    const got = crd.loss(ctx);
    assertClose(await got.data(), await pure.loss.data(), 'descriptor loss');
    assertClose(live('z').dataSync(), pure.z, 'Z estimated and stored');
    const index = tf.tensor1d(own, 'int32');
    const rows = await crdBankRows(banks.memS, index, pure.embS, c.m).data();
    const before = banks.memS.dataSync();
    const after = live('mem_s').dataSync();
    for (let r = 0; r < c.n_data; r++) {
      const at = own.indexOf(r);
      const want = at >= 0 ? rows.slice(at * c.d, (at + 1) * c.d) : before.slice(r * c.d, (r + 1) * c.d);
      assertClose(after.slice(r * c.d, (r + 1) * c.d), want, `student bank row ${r}`);
    }
    crd.loss(ctx);
    assert.deepEqual(
      Array.from(live('z').dataSync()),
      Array.from(Float32Array.from(pure.z)),
      'Z stays fixed',
    );
  });

  it('bad inputs name the method and the shapes', () => {
    const { s, t, w, banks, idx } = load(c);
    const narrow = tf.zeros([s.shape[0]!, 5]);
    assert.throws(
      () => crdLoss(narrow, t, w, banks, idx, null, { nceT: 0.07 }),
      /crdLoss: embeddings take 6 \(student\) and 7 \(teacher\) features, got 5 and 7/,
    );
    assert.throws(
      () => crdLoss(s, t, w, banks, tf.zeros([2, 3], 'int32') as tf.Tensor2D, null, { nceT: 0.07 }),
      /crdLoss: idx must be int32 \[N, K \+ 1\] with N = 5, got int32 \[2, 3\]/,
    );
    assert.throws(
      () => crdLoss(s, tf.zeros([4, 7]), w, banks, idx, null, { nceT: 0.07 }),
      /crdLoss: expected student and teacher features \[N, \.\.\.\] with one batch size/,
    );
    assert.throws(
      () =>
        crd.parts!({ student: { feat: [6] }, teacher: { feat: [5] } }, crd.schema.parse({}), {
          ...data,
          numExamples: 0,
        }),
      /crd: needs the training set size for its memory bank, got 0/,
    );
  });
});
