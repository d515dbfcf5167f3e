import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../../../src/config/errors.js';
import { cc, ccGramLoss, ccLoss, type LinearWeights, linearWeights } from '../../../src/distill/losses/cc.js';
import { assertClose } from './golden.js';
import {
  BACKENDS,
  lossContext,
  type PairCase,
  perExample,
  relationCases,
  retortLayout,
} from './relation-golden.js';

/** Linear weights in PyTorch's layout: [d, in] with `in` in NCHW-flatten order for maps. */
interface CcCase extends PairCase {
  d: number;
  ws: number[];
  bs: number[];
  wt: number[];
  bt: number[];
  grad_ws: number[];
  grad_bs: number[];
  grad_wt: number[];
  grad_bt: number[];
}
const cases = relationCases<CcCase>('cc');
const data = { numExamples: 100, numClasses: 10, batchSize: 8, seed: 1 };

/**
 * nn.Linear's [d, in] weight -> Retort's [in, d] kernel. For a map input PyTorch flattens C, H, W
 * and Retort H, W, C: the same linear map, its rows permuted.
 */
function kernel(w: number[], d: number, shape: number[]): tf.Tensor2D {
  return tf.tidy(() => {
    const per = shape.slice(1);
    const x = tf.tensor(w, [d, ...per]);
    const perm = per.length === 3 ? [2, 3, 1, 0] : [1, 0];
    return tf.reshape(tf.transpose(x, perm), [-1, d]) as tf.Tensor2D;
  });
}

function load(c: CcCase) {
  return {
    s: retortLayout(c.student, c.student_shape),
    t: retortLayout(c.teacher, c.teacher_shape),
    embedS: { kernel: kernel(c.ws, c.d, c.student_shape), bias: tf.tensor1d(c.bs) },
    embedT: { kernel: kernel(c.wt, c.d, c.teacher_shape), bias: tf.tensor1d(c.bt) },
    grads: [
      retortLayout(c.grad_student, c.student_shape),
      kernel(c.grad_ws, c.d, c.student_shape),
      tf.tensor1d(c.grad_bs),
      kernel(c.grad_wt, c.d, c.teacher_shape),
      tf.tensor1d(c.grad_bt),
    ],
  };
}

for (const backend of BACKENDS) {
  describe(`CC vs PyTorch (Peng et al. / RepDistiller's Correlation + LinearEmbed) on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: value and gradients (student, both embeddings)`, async () => {
        await tf.setBackend(backend);
        const { s, t, embedS, embedT, grads } = load(c);
        const f = (x: tf.Tensor, ws: tf.Tensor, bs: tf.Tensor, wt: tf.Tensor, bt: tf.Tensor) =>
          ccLoss(
            x,
            t,
            { kernel: ws as tf.Tensor2D, bias: bs as tf.Tensor1D },
            { kernel: wt as tf.Tensor2D, bias: bt as tf.Tensor1D },
          );
        const xs = [s, embedS.kernel, embedS.bias, embedT.kernel, embedT.bias] as const;
        const value = f(...xs);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        const got = tf.grads(f)([...xs]);
        const names = ['student', 'student kernel', 'student bias', 'teacher kernel', 'teacher bias'];
        for (const [i, g] of grads.entries())
          assertClose(await got[i]!.data(), await g.data(), `${c.name} d/d ${names[i]}`);
        tf.dispose([...xs, t, value, ...grads, ...got]);
      });
    }

    it('the teacher features get no gradient (its embedding does), and nothing leaks', async () => {
      await tf.setBackend(backend);
      const { s, t, embedS, embedT, grads } = load(cases[0]!);
      const before = tf.memory().numTensors;
      const g = tf.grad((x: tf.Tensor) => ccLoss(s, x, embedS, embedT))(t);
      assert.equal(Math.max(...Array.from(await g.data(), Math.abs)), 0);
      g.dispose();
      tf.dispose(ccLoss(s, t, embedS, embedT));
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
      tf.dispose([s, t, embedS.kernel, embedS.bias, embedT.kernel, embedT.bias, ...grads]);
    });
  });
}

describe('CC descriptor', () => {
  it("defaults: RepDistiller's feat_dim 128; unknown keys fail", () => {
    assert.deepEqual(cc.schema.parse({}), { variant: 'embedding', featDim: 128 });
    assert.throws(() => parseOrThrow(cc.schema, { variant: 'rbf' }, 'exp.yaml losses[1]'), /variant/);
    assert.throws(
      () => parseOrThrow(cc.schema, { feat_dim: 128 }, 'exp.yaml losses[1]'),
      /unknown key 'feat_dim'/,
    );
  });

  it('builds both embeddings from the tapped shapes, initialised like nn.Linear', () => {
    const parts = cc.parts!(
      { student: { feat: [64] }, teacher: { feat: [1, 1, 256] } },
      cc.schema.parse({}),
      data,
    );
    const es = linearWeights(parts.embedS!);
    const et = linearWeights(parts.embedT!);
    assert.deepEqual(es.kernel.shape, [64, 128]);
    assert.deepEqual(et.kernel.shape, [256, 128]);
    assert.ok(es.kernel instanceof tf.Variable && et.bias instanceof tf.Variable, 'live variables');
    assert.equal(parts.embedS!.trainableWeights.length + parts.embedT!.trainableWeights.length, 4);
    // Uniform in +-1/sqrt(fan_in): 8192 kernel draws come within 1% of the bound, 128 bias draws
    // within 80% of it (each fails with probability below 1e-9).
    for (const [w, bound, near] of [
      [es.kernel, 1 / 8, 0.99],
      [es.bias, 1 / 8, 0.8],
      [et.kernel, 1 / 16, 0.99],
    ] as const) {
      const max = Math.max(...Array.from(w.dataSync(), Math.abs));
      assert.ok(max <= bound && max > near * bound, `init range ${max} vs bound ${bound}`);
    }
    parts.embedS!.dispose();
    parts.embedT!.dispose();
  });

  it('through the descriptor: fixture weights in the parts give the fixture value and gradients', async () => {
    await tf.setBackend('native');
    const c = cases[2]!; // a map student: the part's input width is H * W * C
    const { s, t, embedS, embedT, grads } = load(c);
    const cfg = cc.schema.parse({ featDim: c.d });
    const parts = cc.parts!(
      { student: { feat: perExample(s) }, teacher: { feat: perExample(t) } },
      cfg,
      data,
    );
    const live = [linearWeights(parts.embedS!), linearWeights(parts.embedT!)] as LinearWeights[];
    (live[0]!.kernel as tf.Variable).assign(embedS.kernel);
    (live[0]!.bias as tf.Variable).assign(embedS.bias);
    (live[1]!.kernel as tf.Variable).assign(embedT.kernel);
    (live[1]!.bias as tf.Variable).assign(embedT.bias);
    const sv = tf.variable(s);
    const { value, grads: got } = tf.variableGrads(() =>
      cc.loss(lossContext(cfg, { feat: sv }, { feat: t }, parts)),
    );
    assertClose(await value.data(), [c.loss], 'descriptor loss');
    const vars = [sv, live[0]!.kernel, live[0]!.bias, live[1]!.kernel, live[1]!.bias] as tf.Variable[];
    assert.deepEqual(Object.keys(got).sort(), vars.map((v) => v.name).sort());
    for (const [i, v] of vars.entries())
      assertClose(await got[v.name]!.data(), await grads[i]!.data(), `descriptor gradient ${i}`);
    tf.dispose([s, t, sv, value, ...Object.values(got), ...grads]);
    tf.dispose([embedS.kernel, embedS.bias, embedT.kernel, embedT.bias]);
    parts.embedS!.dispose();
    parts.embedT!.dispose();
  });

  it('bad inputs name the method and the shapes', () => {
    const w = (i: number, o: number) => ({
      kernel: tf.zeros([i, o]) as tf.Tensor2D,
      bias: tf.zeros([o]) as tf.Tensor1D,
    });
    assert.throws(
      () => ccLoss(tf.zeros([1, 4]), tf.zeros([1, 6]), w(4, 3), w(6, 3)),
      /ccLoss: expected student and teacher features \[N, \.\.\.\] with one batch size N >= 2, got student \[1, 4\] and teacher \[1, 6\]/,
    );
    assert.throws(
      () => ccLoss(tf.zeros([4, 5]), tf.zeros([4, 6]), w(4, 3), w(6, 3)),
      /ccLoss: expected features of flat width 4 \(student\) and 6 \(teacher\) .*got student \[4, 5\], teacher \[4, 6\], kernels \[4, 3\] and \[6, 3\]/,
    );
  });
});

const gramCases = relationCases<PairCase>('cc_gram');

for (const backend of BACKENDS) {
  describe(`CC, Gram variant (normalised batch Gram matrices) vs PyTorch on ${backend}`, () => {
    for (const c of gramCases) {
      // A Gram matrix of rows does not see the order in which each row was flattened (NHWC here).
      it(`${c.name}: value and gradient`, async () => {
        await tf.setBackend(backend);
        const s = retortLayout(c.student, c.student_shape);
        const t = retortLayout(c.teacher, c.teacher_shape);
        const gs = retortLayout(c.grad_student, c.student_shape);
        const value = ccGramLoss(s, t);
        const g = tf.grad((x: tf.Tensor) => ccGramLoss(x, t))(s);
        assertClose(await value.data(), [c.loss], `${c.name} loss`);
        assertClose(await g.data(), await gs.data(), `${c.name} d/d student`);
        const gt = tf.grad((x: tf.Tensor) => ccGramLoss(s, x))(t);
        assert.equal(Math.max(...Array.from(await gt.data(), Math.abs)), 0, 'no gradient to the teacher');
        tf.dispose([s, t, gs, value, g, gt]);
      });
    }
  });
}

describe('CC descriptor, Gram variant', () => {
  it('builds no parts and gives the fixture value through the descriptor', async () => {
    await tf.setBackend('native');
    const cfg = cc.schema.parse({ variant: 'gram' });
    const c = gramCases[1]!;
    const s = retortLayout(c.student, c.student_shape);
    const t = retortLayout(c.teacher, c.teacher_shape);
    const parts = cc.parts!(
      { student: { feat: perExample(s) }, teacher: { feat: perExample(t) } },
      cfg,
      data,
    );
    assert.deepEqual(parts, {});
    const v = cc.loss(lossContext(cfg, { feat: s }, { feat: t }, parts));
    assertClose(await v.data(), [c.loss], 'descriptor loss');
    tf.dispose([s, t, v]);
  });
});
