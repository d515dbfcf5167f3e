/**
 * The addon's argument checker, called directly with hostile arguments. The JS kernels validate
 * before they call the addon, so tfjs-level tests never reach the C++ checks; a stale JS side or a
 * hand-made call must still get an exception naming the kernel, never memory it does not own.
 *
 * Real calls are recorded while a small workload runs every native kernel through tfjs; each
 * recorded call is then replayed with one argument spoiled at a time (an array one element short or
 * long, empty, of another type; a geometry value negative, zero, off by one or huge; a number NaN,
 * negative or huge). A replay may succeed (some values are as valid as the original) or throw an
 * Error whose message starts with the kernel's name; anything else fails, and so does a crash (the
 * test process dies). Under `npm run test:asan` the same replays also prove that no accepted call
 * reads or writes out of bounds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradients tf.grad needs
import '../src/index.js';
import { native } from '../src/binding.js';
import { adamUpdate, batchNormTrain, gatherRowsDot, scatterRows, sgdUpdate, symEig } from '../src/index.js';

type Arg = unknown;
const addon = native as unknown as Record<string, (...a: Arg[]) => unknown> | null;
const recorded = new Map<string, Arg[][]>();
const trace = process.env['RETORT_GUARD_TRACE'] === '1';

function cloneArg(a: Arg): Arg {
  if (a instanceof Float32Array || a instanceof Int32Array) return a.slice();
  return a;
}

/** Wraps every kernel function of the addon so that calls are recorded (at most 4 per kernel). */
function record(): () => void {
  if (addon === null) return () => {};
  const originals = new Map<string, (...a: Arg[]) => unknown>();
  for (const [name, fn] of Object.entries(addon)) {
    if (typeof fn !== 'function' || name === 'setNumThreads') continue;
    originals.set(name, fn);
    addon[name] = (...args: Arg[]) => {
      const list = recorded.get(name) ?? [];
      if (list.length < 4) list.push(args.map(cloneArg));
      recorded.set(name, list);
      return fn.apply(addon, args);
    };
  }
  return () => {
    for (const [name, fn] of originals) addon[name] = fn;
  };
}

let seed = 7;
function rnd(shape: number[], lo = -1, hi = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    v[i] = lo + ((hi - lo) * seed) / 2147483648;
  }
  return tf.tensor(v, shape);
}

/** Runs every native kernel at least once, through tfjs, on small inputs. */
function workload(): void {
  tf.tidy(() => {
    const x = rnd([2, 6, 6, 3]);
    const w = rnd([3, 3, 3, 4]);
    const dw = rnd([3, 3, 3, 2]);
    const x4 = x as tf.Tensor4D;
    const conv = (a: tf.Tensor, f: tf.Tensor) =>
      tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, [2, 1], 'same');
    tf.grads(conv)([x, w], rnd([2, 3, 6, 4]));
    const depth = (a: tf.Tensor, f: tf.Tensor) =>
      tf.depthwiseConv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid');
    tf.grads(depth)([x, dw], rnd([2, 4, 4, 6]));
    tf.fused.conv2d({
      x: x4,
      filter: w as tf.Tensor4D,
      strides: 1,
      pad: 'same',
      bias: rnd([4]),
      activation: 'relu',
    });
    tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'))(x);
    tf.grad((a: tf.Tensor) => tf.avgPool(a as tf.Tensor4D, 3, 1, 'same'))(x);
    const a = rnd([3, 4, 5]);
    const b = rnd([3, 5, 2]);
    tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q))([a, b]);
    tf.fused.matMul({ a: rnd([4, 5]), b: rnd([5, 3]), bias: rnd([3]), activation: 'relu' });
    const u = rnd([3, 4], 0.1, 2);
    const v = rnd([4]);
    for (const op of [tf.add, tf.sub, tf.mul, tf.div, tf.maximum, tf.minimum, tf.squaredDifference, tf.pow])
      op(u, v);
    for (const op of [tf.relu, tf.relu6, tf.elu, tf.exp, tf.log, tf.neg, tf.square, tf.sqrt, tf.rsqrt]) op(u);
    for (const op of [tf.reciprocal, tf.abs, tf.sigmoid, tf.tanh, tf.step]) op(u);
    tf.leakyRelu(u, 0.2);
    tf.addN([u, u, rnd([3, 4])]);
    for (const op of [tf.sum, tf.mean, tf.max, tf.min, tf.prod]) op(u, 1);
    tf.argMax(u, 1);
    tf.softmax(u);
    tf.transpose(rnd([2, 3, 4]), [2, 0, 1]);
    tf.pad(
      u,
      [
        [1, 0],
        [0, 2],
      ],
      0.5,
    );
    tf.tile(u, [2, 1]);
    tf.slice(u, [1, 1], [2, 2]);
    tf.concat([u, rnd([3, 2])], 1);
    tf.gather(u, tf.tensor1d([2, 0, 2], 'int32'), 0);
    tf.unsortedSegmentSum(u, tf.tensor1d([1, 0, 1], 'int32'), 2);
    tf.batchNorm(rnd([2, 4]), rnd([4]), rnd([4], 0.5, 1), rnd([4]), rnd([4]), 1e-3);
    const g = rnd([4]);
    const be = rnd([4]);
    tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => {
      const r = batchNormTrain(xx, gg, bb, tf.zeros([4]), tf.ones([4]), { epsilon: 1e-5, momentum: 0.9 });
      return r.y;
    })([rnd([3, 4]), g, be]);
    adamUpdate(rnd([5]), rnd([5]), rnd([5]), rnd([5], 0, 1), {
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      c1: 10,
      c2: 100,
      weightDecay: 0.01,
      decoupled: true,
    });
    sgdUpdate(rnd([5]), rnd([5]), rnd([5]), {
      lr: 0.1,
      momentum: 0.9,
      dampening: 0,
      weightDecay: 1e-4,
      nesterov: true,
      firstStep: false,
    });
    const s = rnd([2, 3, 3]);
    const sym = tf.add(s, tf.transpose(s, [0, 2, 1]));
    tf.grad((m: tf.Tensor) => {
      const r = symEig(m);
      return tf.add(tf.sum(r.values), tf.sum(tf.mul(r.vectors, r.vectors)));
    })(sym);
    const table = rnd([6, 4]);
    const idx = tf.tensor2d(
      [
        [0, 5],
        [3, 3],
      ],
      [2, 2],
      'int32',
    );
    tf.grads((t: tf.Tensor, q: tf.Tensor) => gatherRowsDot(t, idx, q))([table, rnd([2, 4])]);
    scatterRows(table, tf.tensor1d([1, 4], 'int32'), rnd([2, 4]));
  });
}

/** One spoiled argument at a time: [what, args]. */
function* spoil(name: string, args: Arg[]): Generator<[string, Arg[], boolean]> {
  const withArg = (i: number, v: Arg) => args.map((a, j) => (j === i ? v : a));
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a instanceof Float32Array || a instanceof Int32Array) {
      const Ctor = a.constructor as Float32ArrayConstructor | Int32ArrayConstructor;
      // One element short: every array is tied to a checked size, so this must be refused.
      if (a.length > 0) yield [`arg ${i} one short`, withArg(i, a.slice(0, a.length - 1)), true];
      const longer = new Ctor(a.length + 1);
      longer.set(a);
      yield [`arg ${i} one long`, withArg(i, longer), false];
      yield [`arg ${i} empty`, withArg(i, new Ctor(0)), false];
      yield [
        `arg ${i} other type`,
        withArg(i, a instanceof Float32Array ? new Int32Array(a.length) : new Float32Array(a.length)),
        false,
      ];
      yield [`arg ${i} a number`, withArg(i, 3), true];
      if (a instanceof Int32Array) {
        for (let k = 0; k < Math.min(a.length, 24); k++) {
          for (const v of [-1, 0, a[k]! + 1, a[k]! - 1, 1 << 30, -(2 ** 31), 2 ** 31 - 1]) {
            const c = a.slice();
            c[k] = v;
            yield [`arg ${i}[${k}] = ${v}`, withArg(i, c), false];
          }
        }
      }
    } else if (typeof a === 'number') {
      for (const v of [-1, 0, a + 1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e12, 0.5, -(2 ** 40)])
        yield [`arg ${i} = ${v}`, withArg(i, v), false];
      yield [`arg ${i} a string`, withArg(i, 'x'), true];
    }
  }
  // AddN takes any number of inputs: one fewer is another valid call.
  yield ['one argument missing', args.slice(0, args.length - 1), name !== 'AddN'];
  yield ['33 arguments', [...args, ...new Array(33 - args.length).fill(0)], true];
}

describe('addon argument checks (direct calls)', {
  skip: addon === null ? 'addon not loaded' : false,
}, () => {
  const stop = record();
  workload();
  stop();

  it('the workload reached every kernel the addon exports', () => {
    const missing = Object.keys(addon!).filter(
      (k) => typeof addon![k] === 'function' && k !== 'setNumThreads' && !recorded.has(k),
    );
    assert.deepEqual(missing, []);
  });

  it('spoiled calls either run or throw an error naming the kernel; tied sizes are always refused', (t) => {
    let calls = 0;
    let refused = 0;
    const problems: string[] = [];
    for (const [name, list] of recorded) {
      const fn = addon![name]!;
      for (const args of list) {
        for (const [what, spoiled, mustThrow] of spoil(name, args)) {
          // Fresh outputs per call: a call that runs writes into its arrays.
          const fresh = spoiled.map(cloneArg);
          calls++;
          // A crash ends the process: RETORT_GUARD_TRACE=1 names the call that did it.
          if (trace) process.stderr.write(`${name} (${what})\n`);
          try {
            fn.apply(addon, fresh);
            if (mustThrow) problems.push(`${name} (${what}): accepted`);
          } catch (e) {
            refused++;
            const msg = e instanceof Error ? e.message : String(e);
            if (!msg.startsWith(`${name}: `)) problems.push(`${name} (${what}): ${msg}`);
          }
        }
      }
    }
    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems in ${calls} calls`);
    assert.ok(refused > calls / 4, `refused ${refused} of ${calls}`);
    t.diagnostic(`${calls} spoiled calls over ${recorded.size} kernels, ${refused} refused`);
  });

  it('an output that overlaps an input is refused (tensors are never written in place)', () => {
    const x = new Float32Array(8).fill(1);
    assert.throws(() => addon!['Relu']!(x, x), /^Error: Relu: argument 1 \(out\) overlaps argument 0/);
    assert.throws(
      () => addon!['Relu']!(x.subarray(0, 4), x.subarray(3, 7)),
      /Relu: argument 1 \(out\) overlaps/,
    );
    const out = new Float32Array(4);
    addon!['Relu']!(x.subarray(0, 4), out);
    assert.deepEqual([...out], [1, 1, 1, 1]);
  });
});
