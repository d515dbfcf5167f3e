import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkExact, SPECIAL } from './exact.js';
import { checkParityNonFinite } from './nan_parity.js';
import { checkParity, nativeRuns, randTensor, requireNative, tf } from './parity.js';

type Binary = (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;
// lo/hi: input range (Pow's base stays positive so that its gradient, which takes log(a), is finite).
const ops: { kernel: string; fn: Binary; lo: number; hi: number }[] = [
  { kernel: 'Add', fn: (a, b) => tf.add(a, b), lo: -1, hi: 1 },
  { kernel: 'Sub', fn: (a, b) => tf.sub(a, b), lo: -1, hi: 1 },
  { kernel: 'Multiply', fn: (a, b) => tf.mul(a, b), lo: -1, hi: 1 },
  { kernel: 'RealDiv', fn: (a, b) => tf.div(a, b), lo: 0.5, hi: 2 },
  { kernel: 'Maximum', fn: (a, b) => tf.maximum(a, b), lo: -1, hi: 1 },
  { kernel: 'Minimum', fn: (a, b) => tf.minimum(a, b), lo: -1, hi: 1 },
  { kernel: 'SquaredDifference', fn: (a, b) => tf.squaredDifference(a, b), lo: -1, hi: 1 },
  { kernel: 'Pow', fn: (a, b) => tf.pow(a, b), lo: 0.5, hi: 2 },
];

// Every broadcast pattern, odd sizes, and sizes above the threshold where the loops go parallel.
const pairs: [string, number[], number[]][] = [
  ['same shape rank 1', [7], [7]],
  ['same shape rank 3', [3, 5, 7], [3, 5, 7]],
  ['scalar right', [4, 5], []],
  ['scalar left', [], [4, 5]],
  ['[1] vs rank 1', [1], [9]],
  ['rank 1 vs [1]', [9], [1]],
  ['row [..., C] op [C]', [2, 3, 5], [5]],
  ['row [C] op [..., C]', [5], [2, 3, 5]],
  ['column [N, C] op [N, 1]', [6, 4], [6, 1]],
  ['column [N, 1] op [N, C]', [6, 1], [6, 4]],
  ['outer [N, 1] op [1, C]', [5, 1], [1, 4]],
  ['general 4-D vs 3-D', [2, 3, 4, 5], [3, 1, 5]],
  ['general 3-D vs 4-D', [3, 1, 5], [2, 3, 4, 5]],
  ['middle dims broadcast', [2, 1, 4, 1], [2, 3, 1, 5]],
  ['rank 6', [2, 1, 3, 1, 2, 3], [3, 2, 1, 3]],
  ['parallel same shape', [40001], [40001]],
  ['parallel bias add', [300, 257], [257]],
  ['parallel column', [3, 70001], [3, 1]],
  ['parallel scalar', [], [50003]],
  ['parallel general', [7, 1, 90, 65], [5, 1, 65]],
];

describe('broadcasting binary kernels: native vs cpu', () => {
  requireNative();
  for (const op of ops) {
    it(`${op.kernel}: forward on every broadcast pattern (native path runs)`, () => {
      for (const [pi, [label, sa, sb]] of pairs.entries()) {
        const what = `${op.kernel} ${label} ${JSON.stringify(sa)} op ${JSON.stringify(sb)}`;
        const run = () => op.fn(randTensor(sa, 10 + pi, op.lo, op.hi), randTensor(sb, 50 + pi, op.lo, op.hi));
        checkParity(what, run);
        tf.setBackend('native');
        assert.equal(
          nativeRuns(op.kernel, () => tf.tidy(run)),
          1,
          `${what}: native path did not run`,
        );
      }
    });

    // tfjs's gradients of Maximum, Minimum and SquaredDifference do not reduce broadcast dims (they
    // fail on cpu too): same shapes only for those.
    const sameOnly = ['Maximum', 'Minimum', 'SquaredDifference'].includes(op.kernel);
    const gradPairs = sameOnly
      ? [
          [
            [3, 5],
            [3, 5],
          ],
        ]
      : [
          [
            [3, 5],
            [3, 5],
          ],
          [[2, 3, 5], [5]],
          [
            [6, 1],
            [6, 4],
          ],
          [
            [2, 3, 4, 5],
            [3, 1, 5],
          ],
        ];
    it(`${op.kernel}: gradients of both operands`, () => {
      for (const [sa, sb] of gradPairs) {
        checkParity(`${op.kernel} grads ${JSON.stringify(sa)} op ${JSON.stringify(sb)}`, () =>
          tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(op.fn(a, b), randTensor(a.shape, 7))))([
            randTensor(sa!, 1, op.lo, op.hi),
            randTensor(sb!, 2, op.lo, op.hi),
          ]),
        );
      }
    });

    // All pairs of special values (NaN, +-Infinity, +-0, ...): [S, 1] op [1, S].
    it(`${op.kernel}: NaN, infinities and signed zeros exactly as cpu`, () => {
      const s = SPECIAL.length;
      const run = () => op.fn(tf.tensor(SPECIAL, [s, 1]), tf.tensor(SPECIAL, [1, s]));
      // Pow is computed by a different libm than V8's: exact on these values, close elsewhere.
      checkExact(`${op.kernel} special values`, run);
      checkParityNonFinite(`${op.kernel} special values, same shape`, () =>
        op.fn(tf.tensor(SPECIAL), tf.tensor(SPECIAL.slice().reverse())),
      );
    });
  }

  it('Pow: negative bases with integer and fractional exponents', () => {
    checkParityNonFinite('pow', () =>
      tf.pow(
        tf.tensor([-2, -2, -0.5, -3, 0, -0, 1, -1, 2], [9, 1]),
        tf.tensor([2, 3, 0.5, -1, -2, 0], [1, 6]),
      ),
    );
  });

  it('int32 and bool operands and rank 7 run the JS kernel and still agree', () => {
    const cases: [string, string, () => tf.Tensor][] = [
      ['int32 add', 'Add', () => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4], [1], 'int32'))],
      [
        'int32 mul',
        'Multiply',
        () => tf.mul(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([4, 5, 6], [3], 'int32')),
      ],
      ['bool add', 'Add', () => tf.add(tf.tensor([1, 0], [2], 'bool'), tf.tensor([1, 1], [2], 'bool'))],
      ['rank 7', 'Add', () => tf.add(randTensor([2, 1, 2, 1, 2, 1, 3], 1), randTensor([2, 1, 1, 3], 2))],
    ];
    for (const [what, kernel, run] of cases) {
      checkParity(what, run);
      tf.setBackend('native');
      assert.equal(
        nativeRuns(kernel, () => tf.tidy(run)),
        0,
        `${what}: should fall back`,
      );
    }
  });

  it('incompatible shapes throw as on cpu', () => {
    tf.setBackend('native');
    assert.throws(() => tf.tidy(() => tf.add(tf.ones([2, 3]), tf.ones([4]))), /broadcast/);
  });

  it('empty tensors', () => {
    checkParity('empty add', () => tf.add(tf.ones([0, 3]), tf.ones([3])));
  });
});
