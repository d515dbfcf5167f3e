/**
 * Lottery tickets (compress/lottery.ts, compress/stages/lottery.ts): the sparsity of every round is
 * 1 - (1 - rate)^r with exact counts; each round starts from the rewind point's exact values on the
 * surviving weights (biases and batch norm included) and keeps the pruned ones at 0 through
 * training; rewind points come from the stage's input, its own dense round 0 or a checkpoint file,
 * and a missing or wrong file is refused naming it before any training; the control is a random
 * re-initialisation with the same initialisers and the same mask; and the stage runs end to end in
 * runPipeline on a ResNet-8, where the rounds' folder keeps the ticket's checkpoint and the control
 * trains in a folder of its own.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  reinitializeWeights,
  roundSparsities,
  roundsFor,
  snapshotWeights,
  type WeightSnapshot,
} from '../../src/compress/lottery.js';
import { magnitudeMasks, prunableKernels } from '../../src/compress/prune/magnitude.js';
import { type LotteryConfig, lottery, lotterySchema } from '../../src/compress/stages/lottery.js';
import { planStages } from '../../src/compress/stages/registry.js';
import type { StageContext, StageOutcome } from '../../src/compress/stages/types.js';
import { dataSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { buildModel } from '../../src/models/index.js';
import { pipelineSchema, runPipeline, type StageReport } from '../../src/run/compress.js';
import { loadCheckpoint, saveCheckpoint, saveModelWeights } from '../../src/train/checkpoint.js';
import { SGD } from '../../src/train/optimizers.js';
import type { TrainTask } from '../../src/train/trainer.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-lottery-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** conv (uniform [0.5, 1) kernel) -> BN (gamma 0.5) -> relu -> conv -> flatten -> dense: 4 classes. */
function model(seed = 1): tfl.LayersModel {
  const x = tfl.input({ shape: [6, 6, 2] });
  let y = tfl.layers
    .conv2d({
      name: 'c',
      filters: 4,
      kernelSize: 3,
      kernelInitializer: tfl.initializers.randomUniform({ seed, minval: 0.5, maxval: 1 }),
      biasInitializer: tfl.initializers.randomUniform({ seed: seed + 10, minval: -1, maxval: 1 }),
    })
    .apply(x) as tfl.SymbolicTensor;
  y = tfl.layers
    .batchNormalization({ name: 'bn', gammaInitializer: tfl.initializers.constant({ value: 0.5 }) })
    .apply(y) as tfl.SymbolicTensor;
  y = tfl.layers.activation({ activation: 'relu' }).apply(y) as tfl.SymbolicTensor;
  y = tfl.layers
    .conv2d({
      name: 'c2',
      filters: 4,
      kernelSize: 3,
      kernelInitializer: tfl.initializers.randomNormal({ seed: seed + 1, stddev: 0.3 }),
    })
    .apply(y) as tfl.SymbolicTensor;
  y = tfl.layers.flatten().apply(y) as tfl.SymbolicTensor;
  y = tfl.layers
    .dense({
      name: 'd',
      units: 4,
      kernelInitializer: tfl.initializers.randomNormal({ seed: seed + 2, stddev: 0.1 }),
    })
    .apply(y) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y });
}

const kernelValues = (m: tfl.LayersModel) =>
  prunableKernels(m).flatMap((k) => Array.from(k.kernel.dataSync()));
const zeroSet = (m: tfl.LayersModel) => kernelValues(m).flatMap((v, i) => (v === 0 ? [i] : []));
/** Indices of the kernel weights in model.weights (the others: biases, batch norm). */
const kernelIndex = (m: tfl.LayersModel) => {
  const ids = new Set(prunableKernels(m).map((k) => k.kernel.id));
  return m.weights.map((w) => ids.has(w.read().id));
};

/** What the fake fine-tuning saw: weights at the start and end of each call and after each epoch. */
interface Call {
  start: WeightSnapshot;
  end: WeightSnapshot;
  epochs: WeightSnapshot[];
  zerosAtStart: number[];
  zerosAtEnd: number[];
}

/**
 * A stage context whose finetune runs 3 SGD steps per epoch on fixed random batches (CE), through
 * the stage's wrap (mask re-application in `release`) and onEpoch, as ctx.finetune does.
 */
function fakeContext(
  m: tfl.LayersModel,
  epochs: number,
): { ctx: StageContext; calls: Call[]; logs: string[] } {
  const calls: Call[] = [];
  const logs: string[] = [];
  const ctx: StageContext = {
    model: m,
    masks: null,
    epochs,
    log: (l) => logs.push(l),
    async finetune(model, wrap = (t) => t, onEpoch) {
      const call: Call = {
        start: snapshotWeights(model),
        end: [],
        epochs: [],
        zerosAtStart: zeroSet(model),
        zerosAtEnd: [],
      };
      const base: TrainTask = {
        model,
        loss: ({ x, y }) => {
          const logits = model.apply(x, { training: true }) as tf.Tensor2D;
          const total = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 4), logits) as tf.Scalar;
          return { total, terms: {}, logits };
        },
      };
      const opt = new SGD({ lr: 0.2 });
      const task = wrap(base, opt);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      for (let e = 0; e < epochs; e++) {
        for (let s = 0; s < 3; s++) {
          const x = tf.randomNormal([8, 6, 6, 2], 0, 1, 'float32', 100 + s) as tf.Tensor4D;
          const y = tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32');
          try {
            const loss = opt.minimize(
              () => task.loss({ x, y, index: new Uint32Array(8), epoch: e }).total,
              true,
              vars,
            );
            loss?.dispose();
          } finally {
            task.release?.();
          }
          tf.dispose([x, y]);
        }
        call.epochs.push(snapshotWeights(model));
        onEpoch?.(e + 1);
      }
      opt.dispose();
      call.end = snapshotWeights(model);
      call.zerosAtEnd = zeroSet(model);
      calls.push(call);
    },
    calibrate: () => Promise.reject(new Error('not served')),
  };
  return { ctx, calls, logs };
}

const config = (c: Record<string, unknown>): LotteryConfig => lotterySchema.parse(c);
const n = () => kernelValues(model()).length;

/** Every surviving weight of `at` equals `want`, every kernel zero of `at` is a pruned one; returns the zero count. */
function assertRewound(m: tfl.LayersModel, at: WeightSnapshot, want: WeightSnapshot, what: string): number {
  const isKernel = kernelIndex(m);
  let pruned = 0;
  at.forEach((values, i) => {
    for (let j = 0; j < values.length; j++) {
      if (isKernel[i] && values[j] === 0 && want[i]![j] !== 0) pruned++;
      else assert.equal(values[j], want[i]![j], `${what}: weight ${m.weights[i]!.name}[${j}]`);
    }
  });
  return pruned;
}

describe('lottery tickets', () => {
  it('round arithmetic: 1 - (1 - rate)^r per round; rounds from a target sparsity; the config refuses what it cannot run', () => {
    const s = roundSparsities(0.2, 3);
    for (const [i, v] of [0.2, 0.36, 0.488].entries())
      assert.ok(Math.abs(s[i]! - v) < 1e-12, `round ${i + 1}: ${s[i]}`);
    assert.equal(roundsFor(0.2, 0.8), 8, '1 - 0.8^7 = 0.790 < 0.8 <= 1 - 0.8^8 = 0.832');
    const to80 = roundSparsities(0.2, 8, 0.8);
    assert.equal(to80[7], 0.8, 'the last round stops at the target');
    assert.ok(Math.abs(to80[6]! - (1 - 0.8 ** 7)) < 1e-12);
    assert.equal(roundsFor(0.2, 0.36), 2, 'an exact power is not rounded up a round');
    assert.equal(roundsFor(0.5, 0.3), 1);
    assert.deepEqual(roundSparsities(0.5, 1, 0.3), [0.3]);

    const d = config({ rounds: 2 });
    assert.deepEqual(
      { rate: d.rate, scope: d.scope, rewind: d.rewind, control: d.control },
      { rate: 0.2, scope: 'global', rewind: 'start', control: 'random-reinit' },
    );
    const issue = (c: Record<string, unknown>) => {
      const r = lotterySchema.safeParse(c);
      assert.equal(r.success, false, JSON.stringify(c));
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.match(issue({}), /give exactly one of rounds or sparsity; got none/);
    assert.match(issue({ rounds: 2, sparsity: 0.5 }), /got both/);
    assert.match(
      issue({ rounds: 2, rewind: 'init' }),
      /rewindFrom: required with rewind 'init': the checkpoint of the initial weights, e\.g\. <runs>\/<student run>\/init\.ckpt/,
    );
    assert.match(
      issue({ rounds: 2, rewindFrom: 'x.ckpt' }),
      /rewindFrom: applies to rewind 'init' or \{ epoch \}/,
    );
    assert.match(issue({ rounds: 2, rate: 1 }), /rate/);

    assert.deepEqual(
      planStages({ lottery: { sparsity: 0.8 }, quantize: { mode: 'ptq' } }, 'p').map((p) => p.stage.name),
      ['lottery', 'quantize-ptq'],
    );
    for (const prune of [
      { kind: 'unstructured', sparsity: 0.5 },
      { kind: 'structured', fraction: 0.5 },
    ])
      assert.throws(
        () => planStages({ prune, lottery: { rounds: 1 } }, 'p'),
        /compress 'p': lottery prunes by itself \(iterative magnitude pruning\); use lottery or prune, not both/,
      );
  });

  it("rewind 'start': each round prunes rate of the survivors, starts from the exact snapshot on them, and keeps the zeros through training", async () => {
    await tf.setBackend('native');
    const m = model();
    const start = snapshotWeights(m);
    const { ctx, calls, logs } = fakeContext(m, 2);
    const out = await lottery.run(ctx, config({ rate: 0.5, rounds: 3, control: 'none' }));
    assert.equal(calls.length, 3);
    const total = n();
    let previous: number[] = [];
    for (const [r, call] of calls.entries()) {
      const want = Math.floor((1 - 0.5 ** (r + 1)) * total);
      assert.equal(call.zerosAtStart.length, want, `round ${r + 1}: floor(s * n) zeros`);
      assert.equal(assertRewound(m, call.start, start, `round ${r + 1} start`), want);
      assert.ok(
        previous.every((i) => call.zerosAtStart.includes(i)),
        `round ${r + 1}: the weights pruned before stay pruned`,
      );
      assert.deepEqual(call.zerosAtEnd, call.zerosAtStart, `round ${r + 1}: the mask held through training`);
      assert.notDeepEqual(call.end, call.start, `round ${r + 1} trained`);
      previous = call.zerosAtStart;
    }
    assert.equal(out.masks!.sparsity(), Math.floor(0.875 * total) / total);
    assert.deepEqual(zeroSet(m), calls[2]!.zerosAtEnd);
    assert.deepEqual(snapshotWeights(m), calls[2]!.end, 'the model is the last round’s');
    assert.equal(out.controls, undefined);
    assert.ok(
      logs.includes('lottery: | round | rewound to | sparsity | epochs | train top-1 (last epoch) |'),
    );
    const pct = (k: number) => `${((100 * Math.floor(k * total)) / total).toFixed(2)}%`;
    assert.ok(
      logs.some((l) => l.startsWith(`lottery: | 3 | start | ${pct(0.875)} | 2 | `)),
      logs.join('\n'),
    );
  });

  it('rewind from a checkpoint file: its values on the survivors, the mask from the trained input; missing or wrong files are refused naming them, before any training', async () => {
    const m = model();
    const trained = snapshotWeights(m);
    const early = model(7);
    // A trainer checkpoint of epoch 2 (records, optimizer state after the model's weights).
    const epoch2 = join(scratch, 'epoch2.ckpt');
    saveCheckpoint(epoch2, { epoch: 2, globalStep: 6, meta: { records: [] } }, [
      ...early.weights.map((w, i) => ({ name: `m0/w${i}/${w.name}`, tensor: w.read() })),
      { name: 'opt/iterations', tensor: tf.scalar(6) },
    ]);
    const { ctx, calls } = fakeContext(m, 1);
    await lottery.run(
      ctx,
      config({ rate: 0.3, rounds: 1, rewind: { epoch: 2 }, rewindFrom: epoch2, control: 'none' }),
    );
    const wantMask = magnitudeMasks(
      prunableKernels(model()).map((k) => ({ layer: k.layer, kernel: k.kernel })),
      0.3,
      'global',
    );
    const maskZeros = [...wantMask.values()]
      .flatMap((a) => Array.from(a))
      .flatMap((v, i) => (v === 0 ? [i] : []));
    assert.deepEqual(calls[0]!.zerosAtStart, maskZeros, 'pruned by the magnitudes of the trained input');
    assertRewound(m, calls[0]!.start, snapshotWeights(early), 'rewound to the file');
    assert.notDeepEqual(snapshotWeights(early), trained);

    const init = join(scratch, 'init.ckpt');
    saveModelWeights(init, early, {});
    const a = fakeContext(model(), 1);
    await lottery.run(a.ctx, config({ rounds: 1, rewind: 'init', rewindFrom: init, control: 'none' }));
    assertRewound(a.ctx.model, a.calls[0]!.start, snapshotWeights(early), "rewound to 'init'");

    const runFinal = join(scratch, 'model.ckpt');
    saveModelWeights(runFinal, early, { experiment: 'fmnist-x' });
    const missing = join(scratch, 'nowhere', 'init.ckpt');
    const refused: [Record<string, unknown>, RegExp][] = [
      [
        { rewind: 'init', rewindFrom: missing },
        new RegExp(`rewindFrom ${missing} not found \\(the weights of rewind 'init'\\)`),
      ],
      [
        { rewind: { epoch: 1 }, rewindFrom: missing },
        new RegExp(`${missing} not found \\(the weights of rewind \\{ epoch: 1 \\}\\)`),
      ],
      [
        { rewind: { epoch: 3 }, rewindFrom: epoch2 },
        new RegExp(`${epoch2} holds the weights after epoch 2, rewind asks for epoch 3`),
      ],
      [{ rewind: 'init', rewindFrom: epoch2 }, /holds the weights after epoch 2, not an initialisation/],
      [
        { rewind: 'init', rewindFrom: runFinal },
        new RegExp(`${runFinal} holds the final weights of run 'fmnist-x'`),
      ],
      [
        { rewind: { epoch: 1 }, rewindFrom: init },
        new RegExp(`${init} does not say which epoch its weights are from`),
      ],
    ];
    for (const [c, message] of refused) {
      const f = fakeContext(model(), 1);
      await assert.rejects(lottery.run(f.ctx, config({ rounds: 2, control: 'none', ...c })), message);
      assert.equal(f.calls.length, 0, 'refused before any training');
    }
    const other = fakeContext(model(), 1);
    const wide = join(scratch, 'wide.ckpt');
    saveModelWeights(wide, buildModel('resnet8', { inputShape: [6, 6, 2], numClasses: 4 }), {});
    await assert.rejects(
      lottery.run(other.ctx, config({ rounds: 1, rewind: 'init', rewindFrom: wide, control: 'none' })),
      new RegExp(`rewindFrom ${wide} has weight .* of shape`),
    );
  });

  it('rewind { epoch: k }: a dense round 0 first, then the weights after its epoch k; k past the epochs is refused', async () => {
    const m = model();
    const { ctx, calls } = fakeContext(m, 3);
    await lottery.run(ctx, config({ rate: 0.4, rounds: 1, rewind: { epoch: 1 }, control: 'none' }));
    assert.equal(calls.length, 2);
    assert.equal(calls[0]!.zerosAtStart.length, 0, 'round 0 is dense');
    const round0 = calls[0]!;
    assert.equal(
      assertRewound(m, calls[1]!.start, round0.epochs[0]!, 'rewound to round 0 epoch 1'),
      Math.floor(0.4 * n()),
    );
    // Pruned by the magnitudes at the end of round 0 (epoch 3), not those of the rewind point.
    const after0 = model();
    after0.weights.forEach((w, i) => {
      w.write(tf.tensor(round0.end[i]!, w.shape as number[]));
    });
    const wantMask = magnitudeMasks(prunableKernels(after0), 0.4, 'global');
    assert.deepEqual(
      calls[1]!.zerosAtStart,
      [...wantMask.values()].flatMap((a) => Array.from(a)).flatMap((v, i) => (v === 0 ? [i] : [])),
    );
    const zero = fakeContext(model(), 2);
    await lottery.run(zero.ctx, config({ rounds: 1, rewind: { epoch: 0 }, control: 'none' }));
    assertRewound(
      zero.ctx.model,
      zero.calls[1]!.start,
      zero.calls[0]!.start,
      'epoch 0: the weights before round 0',
    );

    const late = fakeContext(model(), 2);
    await assert.rejects(
      lottery.run(late.ctx, config({ rounds: 1, rewind: { epoch: 3 } })),
      /rewind \{ epoch: 3 \} is past the 2 epochs of the dense round 0 \(finetune.epochs\)/,
    );
    assert.equal(late.calls.length, 0);
  });

  it('control: a random re-initialisation with the same initialisers and mask, trained as long; the ticket stays the model', async () => {
    const m = model();
    const start = snapshotWeights(m);
    const { ctx, calls, logs } = fakeContext(m, 2);
    const out: StageOutcome = await lottery.run(ctx, config({ rate: 0.5, rounds: 2, seed: 7 }));
    assert.equal(calls.length, 3, 'two rounds and the control');
    const [, ticketRound, control] = calls as [Call, Call, Call];
    assert.deepEqual(control.zerosAtStart, ticketRound.zerosAtStart, 'the final mask');
    assert.deepEqual(control.zerosAtEnd, control.zerosAtStart, 'kept through training');
    assert.notDeepEqual(control.start, start, 'not the rewind point');
    assert.deepEqual(snapshotWeights(m), ticketRound.end, 'the ticket is restored into the model');
    const twin = out.controls![0]!;
    assert.equal(twin.name, 'random-reinit');
    assert.notEqual(twin.model, m);
    assert.deepEqual(
      snapshotWeights(twin.model),
      control.end,
      'the control row measures the trained re-initialisation',
    );
    assert.deepEqual(zeroSet(twin.model), ticketRound.zerosAtEnd);
    assert.ok(
      logs.some((l) => l.startsWith('lottery: | random-reinit | seed 7 | 75.00% | 2 | ')),
      logs.join('\n'),
    );
    twin.model.dispose();

    // The layers' own initialisers with new seeds: uniform [0.5, 1) conv kernel, gamma 0.5, zero beta.
    const r = model();
    reinitializeWeights(r, 7);
    const w = Object.fromEntries(r.weights.map((v) => [v.originalName, Array.from(v.read().dataSync())]));
    assert.ok(w['c/kernel']!.every((v) => v >= 0.5 && v < 1));
    assert.notDeepEqual(w['c/kernel'], Array.from(model().weights[0]!.read().dataSync()), 'other values');
    assert.ok(w['bn/gamma']!.every((v) => v === 0.5));
    assert.ok(w['bn/beta']!.every((v) => v === 0));
    assert.ok(w['bn/moving_variance']!.every((v) => v === 1));
    const again = model();
    reinitializeWeights(again, 7);
    assert.deepEqual(snapshotWeights(again), snapshotWeights(r), 'the seed fixes the draw');
    reinitializeWeights(again, 8);
    assert.notDeepEqual(snapshotWeights(again), snapshotWeights(r));
  });

  it('runs in runPipeline: 2 rounds of 1 epoch on an untrained ResNet-8 over 64 Fashion-MNIST images', async () => {
    const data = buildData(
      dataSchema.parse({ dataset: 'fashion-mnist', batchSize: 32, trainLimit: 64, testLimit: 64 }),
      0,
    );
    const make = () => buildModel('resnet8', { inputShape: data.shape, numClasses: data.numClasses });
    const m = make();
    const cfg = pipelineSchema.parse({
      name: 'lt',
      student: { run: 'unused' },
      finetune: { epochs: 1 },
      lottery: { rate: 0.2, rounds: 2 },
      export: [],
    });
    const dir = join(scratch, 'lt');
    const logs: string[] = [];
    const reports = await runPipeline(cfg, { model: m, teacher: make(), data }, dir, (l) => logs.push(l));
    assert.deepEqual(
      reports.slice(0, 2).map((r) => r.stage),
      ['baseline', 'lottery'],
    );
    const total = prunableKernels(m).reduce((a, k) => a + k.kernel.size, 0);
    const pruned = Math.floor((1 - 0.8 ** 2) * total);
    assert.equal(zeroSet(m).length, pruned, 'final sparsity 1 - 0.8^2 = 36%');
    assert.ok(reports[1]!.zeroWeights >= pruned, `report counts ${reports[1]!.zeroWeights} zeros`);
    const pct = ((100 * pruned) / total).toFixed(2);
    assert.ok(
      logs.some((l) => l.startsWith(`lottery: | 2 | start | ${pct}% | 1 | `)),
      logs.join('\n'),
    );
    assert.ok(logs.some((l) => l.startsWith(`lottery: | random-reinit | seed 1 | ${pct}% | 1 | `)));
    // Once the runner measures StageOutcome.controls, the re-initialisation is the next row.
    const control = reports.find((r) => r.stage === 'lottery-random-reinit');
    if (control) assert.equal(control.zeroWeights >= pruned, true);
    const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as { stages: StageReport[] };
    assert.ok(results.stages.some((s) => s.stage === 'lottery'));

    // The rounds' folder ends with the ticket's checkpoint; the control trains in its own folder.
    const modelWeights = (path: string) => {
      const ck = loadCheckpoint(path);
      const saved = ck.header.tensors.filter((t) => !t.name.startsWith('opt/'));
      return m.weights.map((_, i) => ck.values.get(saved[i]!.name)!.data);
    };
    const ticket = modelWeights(join(dir, 'lottery', 'checkpoints', 'last.ckpt'));
    assert.deepEqual(ticket, snapshotWeights(m), 'lottery/ keeps the last round’s weights: the ticket');
    const reinit = modelWeights(join(dir, 'lottery-random-reinit', 'checkpoints', 'last.ckpt'));
    assert.notDeepEqual(reinit, ticket);
    const isKernel = kernelIndex(m);
    ticket.forEach((values, i) => {
      if (!isKernel[i]) return;
      for (let j = 0; j < values.length; j++)
        if (values[j] === 0)
          assert.ok(reinit[i]![j] === 0, `the control keeps the ticket's mask: ${i}[${j}]`);
    });
    const lines = (folder: string) =>
      readFileSync(join(dir, folder, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n').length;
    assert.equal(lines('lottery'), 2, 'two rounds of one epoch');
    assert.equal(lines('lottery-random-reinit'), 1, 'the control’s one epoch');
  });
});
