/**
 * RigL (compress/rigl.ts, compress/stages/rigl.ts): ERK densities by hand on toy layers (total
 * sparsity exact, a layer that would pass density 1 made dense and the rest rescaled); the cosine
 * drop fraction and the update steps; one drop/grow update on a hand-made layer; MaskSet.setMask;
 * the refusal after pruning; a grown connection's weight and optimizer state start at 0; the
 * dense-gradient pass leaves the seeded random stream as it found it; and the stage end to end in
 * runPipeline on an untrained ResNet-8 at 90% sparsity, exported to ONNX.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MaskSet, prunableKernels } from '../../src/compress/prune/magnitude.js';
import {
  activeCounts,
  dropFraction,
  dropGrow,
  erkDensities,
  isUpdateStep,
  magnitudeMask,
  randomMask,
} from '../../src/compress/rigl.js';
import { planStages } from '../../src/compress/stages/registry.js';
import { rigl, riglSchema } from '../../src/compress/stages/rigl.js';
import type { StageContext } from '../../src/compress/stages/types.js';
import { dataSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline } from '../../src/run/compress.js';
import { Adam, SGD } from '../../src/train/optimizers.js';
import type { TrainTask } from '../../src/train/trainer.js';
import { Rng, seedEverything, unseed } from '../../src/util/rng.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-rigl-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const close = (a: readonly number[], b: readonly number[], tol = 1e-12) =>
  assert.ok(
    a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= tol),
    `${a.join(', ')} vs ${b.join(', ')}`,
  );

/** conv [3,3,2,4] -> flatten -> (dropout 0.5) -> dense 4: kernels of 72 and 256 weights. */
function smallNet(dropout: boolean): tfl.LayersModel {
  const x = tfl.input({ shape: [6, 6, 2] });
  let y = tfl.layers
    .conv2d({
      name: 'c',
      filters: 4,
      kernelSize: 3,
      kernelInitializer: tfl.initializers.randomNormal({ seed: 1, stddev: 0.5 }),
    })
    .apply(x) as tfl.SymbolicTensor;
  y = tfl.layers.flatten().apply(y) as tfl.SymbolicTensor;
  if (dropout) y = tfl.layers.dropout({ rate: 0.5 }).apply(y) as tfl.SymbolicTensor;
  y = tfl.layers
    .dense({
      name: 'd',
      units: 4,
      kernelInitializer: tfl.initializers.randomNormal({ seed: 2, stddev: 0.3 }),
    })
    .apply(y) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y });
}

/** After each optimizer step (and the stage's release): kernels, their optimizer state, the random stream. */
interface StepRecord {
  kernels: Float32Array[];
  slots: Float32Array[][];
  rng: number[] | null;
}

/**
 * A stage context whose finetune runs one epoch of 4 steps (CE, fixed random batches) with the
 * optimizer `make` gives, handing it to the stage's wrap, as run/compress.ts does.
 */
function fakeContext(
  model: tfl.LayersModel,
  make: () => SGD | Adam,
  rng: Rng | null = null,
): { ctx: StageContext; steps: StepRecord[]; logs: string[] } {
  const steps: StepRecord[] = [];
  const logs: string[] = [];
  const ctx: StageContext = {
    model,
    masks: null,
    epochs: 1,
    stepsPerEpoch: 4,
    log: (l) => logs.push(l),
    async finetune(m, wrap = (t) => t, onEpoch) {
      const opt = make();
      const base: TrainTask = {
        model: m,
        loss: ({ x, y }) => {
          const logits = m.apply(x, { training: true }) as tf.Tensor2D;
          const total = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 4), logits) as tf.Scalar;
          return { total, terms: {}, logits };
        },
      };
      const task = wrap(base, opt);
      const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
      const kernels = prunableKernels(m).map((k) => k.kernel);
      for (let s = 0; s < 4; s++) {
        const x = tf.randomNormal([8, 6, 6, 2], 0, 1, 'float32', 100 + s) as tf.Tensor4D;
        const y = tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32');
        const input = { x, y, index: new Uint32Array(8), epoch: 0 };
        await task.prepare?.(input);
        try {
          opt.minimize(() => task.loss(input).total, false, vars);
        } finally {
          task.release?.();
        }
        tf.dispose([x, y]);
        steps.push({
          kernels: kernels.map((k) => (k.dataSync() as Float32Array).slice()),
          slots: kernels.map((k) =>
            opt.slotVariables(k.name).map((v) => (v.dataSync() as Float32Array).slice()),
          ),
          rng: rng?.getState() ?? null,
        });
      }
      onEpoch?.(1);
      opt.dispose();
    },
    calibrate: () => Promise.reject(new Error('not served')),
  };
  return { ctx, steps, logs };
}

describe('rigl: layer densities', () => {
  it('ERK: density ∝ sum/product of the kernel dims, kept weights exact in total', () => {
    // [3,3,1,4]: 36 weights, sum 11; [4,10]: 40 weights, sum 14. At 0.5: 38 kept, eps = 38 / (11 + 14).
    const shapes = [
      [3, 3, 1, 4],
      [4, 10],
    ];
    close(erkDensities(shapes, 0.5), [(1.52 * 11) / 36, (1.52 * 14) / 40]);
    // 16.72 and 21.28 weights: the one left over goes to the larger remainder.
    assert.deepEqual(activeCounts(shapes, 0.5, 'erk'), [17, 21]);
  });

  it('ERK: a layer past density 1 is made dense and the others rescaled over what is left', () => {
    // 36 + 288 + 1024 = 1348 weights, 540 kept at 0.6. eps = 540/109 would give the first
    // layer 1.51; dense, it keeps 36 and the other two share 504 in ratio 18/288 : 80/1024.
    const shapes = [
      [3, 3, 1, 4],
      [3, 3, 4, 8],
      [16, 64],
    ];
    close(erkDensities(shapes, 0.6), [1, 9 / 28, 45 / 112]);
    const counts = activeCounts(shapes, 0.6, 'erk');
    assert.deepEqual(counts, [36, 93, 411]);
    assert.equal(
      counts.reduce((a, c) => a + c, 0),
      1348 - Math.floor(0.6 * 1348),
    );
  });

  it('uniform: every layer keeps n - floor(sparsity * n)', () => {
    assert.deepEqual(
      activeCounts(
        [
          [3, 3, 1, 4],
          [3, 3, 4, 8],
          [16, 64],
        ],
        0.6,
        'uniform',
      ),
      [15, 116, 410],
    );
  });
});

describe('rigl: schedule', () => {
  it('drop fraction alpha/2 (1 + cos(pi t / T_end)); updates every ΔT steps before T_end', () => {
    close(
      [0, 25, 50, 100].map((t) => dropFraction(t, 0.3, 100)),
      [0.3, 0.15 * (1 + Math.SQRT1_2), 0.15, 0],
    );
    assert.deepEqual(
      [0, 100, 150, 700, 750, 800].map((t) => isUpdateStep(t, 100, 750)),
      [false, true, false, true, false, false],
    );
  });
});

describe('rigl: drop and grow', () => {
  const w = Float32Array.from([0.5, -0.1, 0, 0.3, 0, -0.05, 0, 0.8]);
  const mask = Float32Array.from([1, 1, 0, 1, 0, 1, 0, 1]);

  it('drops the smallest active |w|, grows the largest |grad| at 0; count and density unchanged', () => {
    const grad = Float32Array.from([5, 0.01, 0.2, 5, 0.7, 0.02, 0.4, 5]);
    const r = dropGrow(w, mask, grad, 0.4); // k = floor(0.4 * 5) = 2: drops 5 and 1, grows 4 and 6
    assert.deepEqual(Array.from(r.mask), [1, 0, 0, 1, 1, 0, 1, 1]);
    assert.deepEqual(Array.from(r.weights), [0.5, 0, 0, Math.fround(0.3), 0, 0, 0, Math.fround(0.8)]);
    assert.deepEqual([r.dropped, r.moved], [2, 2]);
    assert.deepEqual(Array.from(r.grown), [4, 6]);
    assert.equal(
      r.mask.reduce((a, v) => a + v, 0),
      5,
    );
    assert.deepEqual(Array.from(mask), [1, 1, 0, 1, 0, 1, 0, 1], 'the input mask is not changed');
  });

  it('a dropped connection grown back keeps its weight and does not count as moved', () => {
    const grad = Float32Array.from([0, 1, 0.2, 0, 0.7, 0.02, 0.4, 0]);
    const r = dropGrow(w, mask, grad, 0.4);
    assert.deepEqual(Array.from(r.mask), [1, 1, 0, 1, 1, 0, 0, 1]);
    assert.equal(r.weights[1], Math.fround(-0.1));
    assert.equal(r.weights[4], 0);
    assert.deepEqual([r.dropped, r.moved], [2, 1]);
    assert.deepEqual(Array.from(r.grown), [4], 'the connection grown back is not new');
  });

  it('starting masks: random with the asked count, or the largest |w|', () => {
    const m = randomMask(100, 17, new Rng(3));
    assert.equal(
      m.reduce((a, v) => a + v, 0),
      17,
    );
    assert.deepEqual(Array.from(magnitudeMask(w, 3)), [1, 0, 0, 1, 0, 0, 0, 1]);
  });
});

describe('rigl: MaskSet.setMask', () => {
  it('replaces one layer mask, applied by the next apply(); a wrong size is refused', () => {
    const x = tfl.input({ shape: [3] });
    const y = tfl.layers
      .dense({ name: 'd', units: 2, kernelInitializer: 'ones' })
      .apply(x) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: x, outputs: y });
    const set = MaskSet.fromMasks(model, { d: new Float32Array(6).fill(1) });
    set.setMask('d', Float32Array.from([1, 0, 0, 1, 1, 0]));
    set.apply();
    assert.deepEqual(Array.from(prunableKernels(model)[0]!.kernel.dataSync()), [1, 0, 0, 1, 1, 0]);
    assert.throws(
      () => set.setMask('d', new Float32Array(5)),
      /layer 'd' got 5 mask entries, its kernel \[3,2\] has 6/,
    );
    assert.throws(() => set.setMask('e', new Float32Array(6)), /no mask for layer 'e' \(masked: d\)/);
    set.dispose();
    model.dispose();
  });
});

describe('rigl: stage', () => {
  it('is refused after pruning, which would fix the connectivity rigl chooses', () => {
    assert.throws(
      () => planStages({ prune: { kind: 'unstructured', sparsity: 0.5 }, rigl: { sparsity: 0.9 } }, 'p'),
      /compress 'p': rigl chooses its own sparse connectivity/,
    );
    assert.throws(() => riglSchema.parse({ sparsity: 0.9, spread: 'erk' }), /spread/);
  });

  it('refuses to re-initialise a model it would not train (finetune.epochs 0)', async () => {
    await tf.setBackend('native');
    const model = buildModel('resnet8', { inputShape: [28, 28, 1], numClasses: 10 });
    const before = model.weights[0]!.read().dataSync().slice();
    const ctx = {
      model,
      masks: null,
      epochs: 0,
      log: () => {},
      finetune: async () => {},
      calibrate: async () => assert.fail('calibrated'),
    };
    await assert.rejects(rigl.run(ctx, riglSchema.parse({ sparsity: 0.9 })), /rigl: finetune\.epochs is 0/);
    assert.deepEqual(model.weights[0]!.read().dataSync(), before);
  });

  it('a grown connection starts fresh: its weight and its optimizer state (SGD momentum, Adam m and v) are exactly 0 after the update', async () => {
    await tf.setBackend('native');
    for (const [name, make] of [
      ['sgd momentum 0.9', () => new SGD({ lr: 0.1, momentum: 0.9 })],
      ['adam', () => new Adam({ lr: 0.01 })],
    ] as const) {
      const { ctx, steps } = fakeContext(smallNet(false), make);
      const out = await rigl.run(
        ctx,
        riglSchema.parse({ sparsity: 0.5, distribution: 'uniform', updateEvery: 2, reinit: false }),
      );
      // 4 steps: T_end = floor(0.75 * 4) = 3, so the one update comes after step 2.
      assert.equal(steps.length, 4);
      const after = out.masks!.state();
      let grownCount = 0;
      for (const [i, { layer }] of prunableKernels(ctx.model).entries()) {
        // Before the update (after step 1) the inactive weights are exactly 0, the active ones not.
        const before = steps[0]!.kernels[i]!;
        const grown = Array.from(after[layer]!.keys()).filter(
          (j) => before[j] === 0 && after[layer]![j] === 1,
        );
        grownCount += grown.length;
        const slots = steps[1]!.slots[i]!;
        assert.equal(slots.length, name === 'adam' ? 2 : 1, `${name}: the optimizer's state of ${layer}`);
        for (const j of grown) {
          assert.ok(
            steps[0]!.slots[i]!.some((sl) => sl[j] !== 0),
            `${name}: ${layer}[${j}] built up state while masked`,
          );
          assert.ok(steps[1]!.kernels[i]![j] === 0, `${name}: grown ${layer}[${j}] starts at 0`);
          for (const [k, sl] of slots.entries())
            assert.ok(sl[j] === 0, `${name}: slot ${k} of grown ${layer}[${j}] is ${sl[j]}, not 0`);
        }
      }
      assert.ok(grownCount > 0, `${name}: the update moved connections`);
      out.masks!.dispose();
      ctx.model.dispose();
    }
  });

  it('the dense-gradient pass takes nothing from the seeded random stream (dropout): the draws do not depend on updateEvery', async () => {
    await tf.setBackend('native');
    const draws = async (updateEvery: number) => {
      const rng = seedEverything(11);
      try {
        const { ctx, steps, logs } = fakeContext(
          smallNet(true),
          () => new SGD({ lr: 0.1, momentum: 0.9 }),
          rng,
        );
        const out = await rigl.run(
          ctx,
          riglSchema.parse({ sparsity: 0.5, distribution: 'uniform', updateEvery, reinit: false }),
        );
        out.masks!.dispose();
        ctx.model.dispose();
        return {
          states: steps.map((s) => s.rng),
          updates: logs.filter((l) => /^rigl: step \d+\/3: /.test(l)),
        };
      } finally {
        unseed();
      }
    };
    const updating = await draws(2);
    const fixed = await draws(100);
    assert.equal(updating.updates.length, 1, 'one update, after step 2');
    assert.equal(fixed.updates.length, 0);
    // Each step's dropout draws once; the update's extra forward pass would draw once more.
    assert.notDeepEqual(updating.states[0], updating.states[1]);
    assert.deepEqual(updating.states, fixed.states);
  });

  it('trains ResNet-8 sparse at 90% in runPipeline: connections move, zeros stay, ONNX fp32 matches', async () => {
    await tf.setBackend('native');
    const data = buildData(
      dataSchema.parse({ dataset: 'fashion-mnist', batchSize: 32, trainLimit: 128, testLimit: 64 }),
      0,
    );
    const make = () => buildModel('resnet8', { inputShape: data.shape, numClasses: data.numClasses });
    const model = make();
    const cfg = pipelineSchema.parse({
      name: 'r1',
      student: { run: 'unused' },
      finetune: { epochs: 1 },
      rigl: { sparsity: 0.9, updateEvery: 2 },
      export: ['onnx'],
    });
    const logs: string[] = [];
    const reports = await runPipeline(cfg, { model, teacher: make(), data }, join(scratch, 'r1'), (l) =>
      logs.push(l),
    );
    assert.deepEqual(
      reports.map((r) => r.stage),
      ['baseline', 'rigl', 'export-onnx'],
    );
    const kernels = prunableKernels(model);
    const counts = activeCounts(
      kernels.map((k) => k.kernel.shape),
      0.9,
      'erk',
    );
    const n = kernels.reduce((a, k) => a + k.kernel.size, 0);
    let zeros = 0;
    for (const [i, { layer, kernel }] of kernels.entries()) {
      const z = Array.from(kernel.dataSync()).filter((v) => v === 0).length;
      // The masked weights are zero after the last step; a kept weight is zero only by accident.
      assert.ok(z >= kernel.size - counts[i]! && z <= kernel.size - counts[i]! + 1, `${layer}: ${z} zeros`);
      zeros += z;
    }
    assert.ok(Math.abs(zeros - 0.9 * n) <= kernels.length, `${zeros} of ${n} zero`);
    assert.ok(reports[1]!.zeroWeights >= Math.floor(0.9 * n));
    // 4 steps of 32: T_end = floor(0.75 * 4) = 3, one update after step 2.
    const moves = logs.filter((l) => /^rigl: step \d+\/3: /.test(l));
    assert.equal(moves.length, 1, logs.join('\n'));
    const moved = Number(/(\d+) connections moved/.exec(moves[0]!)?.[1]);
    assert.ok(moved > 0, moves[0]);
    assert.ok(reports[2]!.onnx!.maxAbsDiff <= cfg.check.fp32MaxDiff);
  });
});
