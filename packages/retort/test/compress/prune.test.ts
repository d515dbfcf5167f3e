import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import '@retort/backend-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MaskSet, magnitudeMasks, prunableKernels, sparsityAt } from '../../src/compress/prune/magnitude.js';

function model(): tfl.LayersModel {
  const x = tfl.input({ shape: [6, 6, 2] });
  let y = tfl.layers
    .conv2d({
      name: 'c',
      filters: 8,
      kernelSize: 3,
      kernelInitializer: tfl.initializers.randomUniform({ seed: 1, minval: 0.5, maxval: 1 }),
    })
    .apply(x) as tfl.SymbolicTensor;
  y = tfl.layers.flatten().apply(y) as tfl.SymbolicTensor;
  y = tfl.layers
    .dense({
      name: 'd',
      units: 4,
      kernelInitializer: tfl.initializers.randomNormal({ seed: 2, stddev: 0.01 }),
    })
    .apply(y) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y });
}

const zeros = (t: tf.Tensor) => Array.from(t.dataSync()).filter((v) => v === 0).length;

describe('magnitude pruning', () => {
  it('layer-wise: every kernel reaches exactly floor(s * n) zeros, and the smallest |w| go', async () => {
    await tf.setBackend('native');
    const m = model();
    const before = prunableKernels(m).map((k) => Array.from(k.kernel.dataSync()));
    const set = MaskSet.prune(m, 0.5, 'layer');
    for (const [i, { kernel }] of prunableKernels(m).entries()) {
      assert.equal(zeros(kernel), Math.floor(0.5 * kernel.size));
      const kept = Array.from(kernel.dataSync())
        .filter((v) => v !== 0)
        .map(Math.abs);
      const pruned = before[i]!.filter((_, j) => kernel.dataSync()[j] === 0).map(Math.abs);
      assert.ok(Math.min(...kept) >= Math.max(...pruned), 'no kept weight is smaller than a pruned one');
    }
    set.dispose();
  });

  it('global: one threshold; the layer of small weights loses more', () => {
    const m = model();
    const set = MaskSet.prune(m, 0.5, 'global');
    const [c, d] = prunableKernels(m);
    const total = c!.kernel.size + d!.kernel.size;
    assert.equal(zeros(c!.kernel) + zeros(d!.kernel), Math.floor(0.5 * total));
    assert.equal(zeros(c!.kernel), 0, 'the unit-scale conv keeps everything');
    assert.equal(
      zeros(d!.kernel),
      Math.floor(0.5 * total),
      'all pruning falls on the 0.01-scale dense layer',
    );
    assert.ok(Math.abs(set.sparsity() - 0.5) < 1e-3);
  });

  it('masks keep pruned weights at zero through an optimizer step, and survive a save/restore', () => {
    const m = model();
    const set = MaskSet.prune(m, 0.8, 'layer');
    const opt = tf.train.sgd(0.1);
    const x = tf.randomNormal([3, 6, 6, 2]);
    opt.minimize(() => tf.sum(tf.square(m.apply(x) as tf.Tensor)) as tf.Scalar);
    const [c] = prunableKernels(m);
    assert.ok(zeros(c!.kernel) < Math.floor(0.8 * c!.kernel.size), 'the step revived weights');
    set.apply();
    assert.equal(zeros(c!.kernel), Math.floor(0.8 * c!.kernel.size));
    const restored = MaskSet.fromMasks(m, set.state());
    assert.equal(restored.sparsity(), set.sparsity());
    assert.throws(() => MaskSet.fromMasks(m, {}), /saved masks lack layer 'c'/);
  });

  it('bad sparsity is refused', () => {
    assert.throws(() => magnitudeMasks(prunableKernels(model()), 1, 'layer'), /sparsity must be in \[0, 1\)/);
  });

  it('AGP: s_i at the start, s_f at the end, the cubic in between, held between updates', () => {
    const s = { kind: 'agp' as const, initial: 0, final: 0.8, start: 10, steps: 4, every: 5 };
    assert.equal(sparsityAt(s, 0), 0);
    assert.equal(sparsityAt(s, 10), 0);
    assert.ok(Math.abs(sparsityAt(s, 15) - (0.8 - 0.8 * (1 - 1 / 4) ** 3)) < 1e-12);
    assert.equal(sparsityAt(s, 17), sparsityAt(s, 15));
    assert.equal(sparsityAt(s, 30), 0.8);
    assert.equal(sparsityAt(s, 100), 0.8);
    assert.equal(sparsityAt({ kind: 'constant', sparsity: 0.5, start: 3 }, 2), 0);
  });
});
