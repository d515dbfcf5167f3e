import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MaskSet, magnitudeMasks, prunableKernels } from '../../src/compress/prune/magnitude.js';
import { type Schedule, sparsityAt } from '../../src/compress/prune/schedule.js';
import { checkSchedule, GradualPruner } from './gradual-pruner.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-prune-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** conv (unit-scale weights) -> BN -> depthwise -> flatten -> dense (0.01-scale weights). */
function model(seed = 1): tfl.LayersModel {
  const x = tfl.input({ shape: [6, 6, 2] });
  let y = tfl.layers
    .conv2d({
      name: 'c',
      filters: 8,
      kernelSize: 3,
      kernelInitializer: tfl.initializers.randomUniform({ seed, minval: 0.5, maxval: 1 }),
      biasInitializer: tfl.initializers.randomUniform({ seed: seed + 10, minval: -1, maxval: 1 }),
    })
    .apply(x) as tfl.SymbolicTensor;
  y = tfl.layers
    .batchNormalization({ name: 'bn', gammaInitializer: tfl.initializers.constant({ value: 0.001 }) })
    .apply(y) as tfl.SymbolicTensor;
  y = tfl.layers
    .depthwiseConv2d({
      name: 'dw',
      kernelSize: 3,
      depthwiseInitializer: tfl.initializers.randomNormal({ seed: seed + 1, stddev: 0.3 }),
    })
    .apply(y) as tfl.SymbolicTensor;
  y = tfl.layers.flatten().apply(y) as tfl.SymbolicTensor;
  y = tfl.layers
    .dense({
      name: 'd',
      units: 4,
      kernelInitializer: tfl.initializers.randomNormal({ seed: seed + 2, stddev: 0.01 }),
    })
    .apply(y) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y });
}

const zeros = (t: tf.Tensor) => Array.from(t.dataSync()).filter((v) => v === 0).length;
const kernelZeros = (m: tfl.LayersModel) => prunableKernels(m).reduce((a, k) => a + zeros(k.kernel), 0);
const kernelSize = (m: tfl.LayersModel) => prunableKernels(m).reduce((a, k) => a + k.kernel.size, 0);

describe('magnitude pruning', () => {
  it('finds conv, depthwise and dense kernels; biases and BN parameters stay untouched', async () => {
    await tf.setBackend('native');
    const m = model();
    assert.deepEqual(
      prunableKernels(m).map((k) => [k.layer, k.kernel.shape]),
      [
        ['c', [3, 3, 2, 8]],
        ['dw', [3, 3, 8, 1]],
        ['d', [32, 4]],
      ],
    );
    const others = () =>
      m.layers.flatMap((l) => l.weights.filter((w) => !/kernel/.test(w.originalName)).map((w) => w.read()));
    const before = others().map((t) => Array.from(t.dataSync()));
    MaskSet.prune(m, 0.9, 'global').dispose();
    assert.deepEqual(
      others().map((t) => Array.from(t.dataSync())),
      before,
    );
    assert.throws(
      () => prunableKernels(m, ['bn']),
      /layer 'bn' .* has no prunable kernel \(prunable: c, dw, d\)/,
    );
  });

  it('layer-wise: every kernel reaches exactly floor(s * n) zeros, and the smallest |w| go', () => {
    const m = model();
    const before = prunableKernels(m).map((k) => Array.from(k.kernel.dataSync()));
    const set = MaskSet.prune(m, 0.5, 'layer');
    for (const [i, { kernel }] of prunableKernels(m).entries()) {
      assert.equal(zeros(kernel), Math.floor(0.5 * kernel.size));
      const after = Array.from(kernel.dataSync());
      const kept = before[i]!.filter((_, j) => after[j] !== 0).map(Math.abs);
      const pruned = before[i]!.filter((_, j) => after[j] === 0).map(Math.abs);
      assert.ok(Math.min(...kept) >= Math.max(...pruned), 'no kept weight is smaller than a pruned one');
    }
    assert.ok(Math.abs(set.sparsity() - kernelZeros(m) / kernelSize(m)) < 1e-12, 'sparsity()');
    set.dispose();
  });

  it('global: one threshold over all kernels (checked against a float64 sort); the small-weight layer loses most', () => {
    const m = model();
    const all = prunableKernels(m).flatMap((k) => Array.from(k.kernel.dataSync(), Math.abs));
    const n = all.length;
    const k = Math.floor(0.35 * n);
    const threshold = Float64Array.from(all).sort()[k - 1]!;
    const set = MaskSet.prune(m, 0.35, 'global');
    assert.equal(kernelZeros(m), k);
    const after = prunableKernels(m).flatMap((kk) => Array.from(kk.kernel.dataSync()));
    for (let i = 0; i < n; i++) {
      if (after[i] === 0) assert.ok(all[i]! <= threshold, `pruned ${all[i]} above threshold ${threshold}`);
      else assert.ok(all[i]! >= threshold, `kept ${all[i]} below threshold ${threshold}`);
    }
    const [c, , d] = prunableKernels(m);
    assert.equal(zeros(c!.kernel), 0, 'the unit-scale conv keeps everything');
    assert.ok(zeros(d!.kernel) > 0.8 * d!.kernel.size, 'the 0.01-scale dense goes first');
    assert.ok(Math.abs(set.sparsity() - k / n) < 1e-12, 'sparsity()');
  });

  it('masks keep pruned weights at zero through an optimizer step', () => {
    const m = model();
    const set = MaskSet.prune(m, 0.8, 'layer');
    const opt = tf.train.sgd(0.1);
    const x = tf.randomNormal([3, 6, 6, 2], 0, 1, 'float32', 3);
    opt.minimize(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
    const [c, dw, d] = prunableKernels(m);
    assert.ok(zeros(c!.kernel) < Math.floor(0.8 * c!.kernel.size), 'the step revived weights');
    set.apply();
    for (const k of [c!, dw!, d!]) assert.equal(zeros(k.kernel), Math.floor(0.8 * k.kernel.size), k.layer);
    set.dispose();
  });

  it('masks survive a save to disk and load into a fresh model; bad files and masks are refused', () => {
    const m = model();
    const set = MaskSet.prune(m, 0.7, 'global', { layers: ['c', 'd'] });
    const path = join(scratch, 'masks.ckpt');
    set.save(path);
    const fresh = model(5);
    const loaded = MaskSet.load(fresh, path);
    assert.deepEqual(loaded.current, { sparsity: 0.7, scope: 'global' });
    assert.deepEqual(loaded.layers, ['c', 'd']);
    for (const [i, k] of prunableKernels(fresh, ['c', 'd']).entries()) {
      const want = prunableKernels(m, ['c', 'd'])[i]!.kernel.dataSync();
      const got = k.kernel.dataSync();
      for (let j = 0; j < got.length; j++) assert.equal(got[j] === 0, want[j] === 0, `${k.layer}[${j}]`);
    }
    assert.equal(zeros(prunableKernels(fresh, ['dw'])[0]!.kernel), 0, 'unmasked layers stay dense');
    assert.throws(
      () => MaskSet.fromMasks(fresh, { c: new Float32Array(3) }),
      /layer 'c' has 3 mask entries, its kernel \[3,3,2,8\] has 144/,
    );
    assert.throws(() => MaskSet.fromMasks(fresh, {}), /no masks/);
    assert.throws(
      () => MaskSet.fromMasks(fresh, { x: new Float32Array(1) }),
      /layer 'x' .* has no prunable kernel/,
    );
  });

  it('bad sparsity is refused', () => {
    assert.throws(() => magnitudeMasks(prunableKernels(model()), 1, 'layer'), /sparsity must be in \[0, 1\)/);
  });
});

describe('pruning schedules', () => {
  it('AGP at known steps (s_i 0.1, s_f 0.9, t0 5, n 4, dt 10)', () => {
    const s: Schedule = { kind: 'agp', initial: 0.1, final: 0.9, start: 5, steps: 4, every: 10 };
    // s_f + (s_i - s_f)(1 - k/4)^3 = 0.9 - 0.8 (1 - k/4)^3 by hand.
    const want: [number, number][] = [
      [0, 0],
      [4, 0],
      [5, 0.1],
      [14, 0.1],
      [15, 0.5625],
      [25, 0.8],
      [34, 0.8],
      [35, 0.8875],
      [45, 0.9],
      [1000, 0.9],
    ];
    for (const [t, v] of want)
      assert.ok(Math.abs(sparsityAt(s, t) - v) < 1e-12, `t=${t}: ${sparsityAt(s, t)}`);
    assert.equal(sparsityAt({ kind: 'constant', sparsity: 0.5, start: 3 }, 2), 0);
    assert.equal(sparsityAt({ kind: 'constant', sparsity: 0.5, start: 3 }, 3), 0.5);
    assert.equal(sparsityAt({ kind: 'one-shot', sparsity: 0.5 }, 0), 0.5);
  });

  it('bad schedules are refused naming the key', () => {
    const agp = { kind: 'agp' as const, initial: 0, final: 0.8, start: 0, steps: 4, every: 1 };
    assert.throws(() => checkSchedule({ ...agp, final: 1 }), /final must be in \[0, 1\), got 1/);
    assert.throws(() => checkSchedule({ ...agp, initial: 0.9 }), /initial \(0.9\) must not exceed final/);
    assert.throws(() => checkSchedule({ ...agp, steps: 0 }), /steps must be an integer >= 1, got 0/);
    assert.throws(() => checkSchedule({ kind: 'constant', sparsity: 0.5, start: -1 }), /start must be/);
  });

  it('gradual pruning through training steps: the achieved sparsity follows AGP, pruned weights stay 0', () => {
    const m = model();
    const s: Schedule = { kind: 'agp', initial: 0, final: 0.75, start: 1, steps: 3, every: 2 };
    const pruner = new GradualPruner(m, s, 'layer');
    const opt = tf.train.sgd(0.05);
    const x = tf.randomNormal([2, 6, 6, 2], 0, 1, 'float32', 4);
    let prev: boolean[] = prunableKernels(m).flatMap((k) => Array.from(k.kernel.dataSync(), (v) => v === 0));
    for (let t = 0; t < 9; t++) {
      opt.minimize(() => tf.sum(tf.square(m.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
      const target = pruner.step(t);
      assert.equal(target, sparsityAt(s, t));
      for (const k of prunableKernels(m))
        assert.equal(zeros(k.kernel), Math.floor(target * k.kernel.size), `step ${t}, layer ${k.layer}`);
      const now = prunableKernels(m).flatMap((k) => Array.from(k.kernel.dataSync(), (v) => v === 0));
      for (let i = 0; i < now.length; i++) if (prev[i]) assert.ok(now[i], `step ${t}: weight ${i} revived`);
      prev = now;
    }
    assert.equal(pruner.masks.current.sparsity, 0.75);
    pruner.dispose();
  });
});
