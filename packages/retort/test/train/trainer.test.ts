import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { ImageDataset } from '../../src/data/dataset.js';
import { BatchLoader } from '../../src/data/loader.js';
import { loadCheckpoint } from '../../src/train/checkpoint.js';
import { Adam, SGD } from '../../src/train/optimizers.js';
import { fit, type TrainTask } from '../../src/train/trainer.js';
import { Rng, seedEverything, unseed } from '../../src/util/rng.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

// Synthetic 8x8x1 images whose class is the bright quadrant: learnable in a few epochs.
function quadrants(n: number, seed: number): ImageDataset {
  const r = new Rng(seed);
  const images = new Uint8Array(n * 64);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = r.int(4);
    labels[i] = c;
    for (let p = 0; p < 64; p++) {
      const y = p >> 3;
      const x = p & 7;
      const q = (y >= 4 ? 2 : 0) + (x >= 4 ? 1 : 0);
      images[i * 64 + p] = Math.min(255, (q === c ? 160 : 40) + r.int(60));
    }
  }
  return { name: 'quadrants', images, labels, count: n, height: 8, width: 8, channels: 1, numClasses: 4 };
}

function makeTask(): TrainTask {
  const input = tfl.input({ shape: [8, 8, 1] });
  let h = tfl.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
    .apply(input);
  h = tfl.layers.flatten().apply(h);
  h = tfl.layers.dropout({ rate: 0.2 }).apply(h);
  const out = tfl.layers.dense({ units: 4, name: 'fc' }).apply(h) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: out });
  return {
    model,
    loss: ({ x, y }) => {
      const logits = model.apply(x, { training: true }) as tf.Tensor;
      const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 4), logits) as tf.Scalar;
      return { total: ce, terms: { ce }, logits };
    },
  };
}

const data = quadrants(96, 1);
// hflip would swap left/right quadrants (label noise here), so only the resume tests flip:
// they check exactness, not learning.
const loader = (seed: number, hflip = true) =>
  new BatchLoader(data, {
    batchSize: 16,
    shuffle: true,
    mean: [0.5],
    std: [0.25],
    cropPadding: 1,
    hflip,
    seed,
  });

async function weightsOf(task: TrainTask): Promise<Float32Array[]> {
  return task.model.weights.map((w) => Float32Array.from(w.read().dataSync()));
}

describe('trainer', () => {
  it('learns, logs JSONL, writes a readable checkpoint', async () => {
    await tf.setBackend('native');
    seedEverything(5);
    const task = makeTask();
    const dir = mkdtempSync(join(scratch, 'run-'));
    const recs = await fit(task, {
      epochs: 4,
      optimizer: new Adam({ lr: 0.01 }),
      schedule: { kind: 'cosine', lr: 0.01, epochs: 4 },
      train: loader(2, false),
      val: new BatchLoader(data, {
        batchSize: 32,
        shuffle: false,
        keepLast: true,
        mean: [0.5],
        std: [0.25],
        seed: 0,
      }),
      runDir: dir,
      log: () => {},
    });
    unseed();
    assert.equal(recs.length, 4);
    assert.ok(recs[3]!.trainLoss < recs[0]!.trainLoss, `loss ${recs[0]!.trainLoss} -> ${recs[3]!.trainLoss}`);
    assert.ok(recs[3]!.valTop1! > 60, `val top-1 ${recs[3]!.valTop1}`);
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 4);
    assert.equal((JSON.parse(lines[3]!) as { epoch: number }).epoch, 4);
    const ck = loadCheckpoint(join(dir, 'checkpoints', 'last.ckpt'));
    assert.equal(ck.header.epoch, 4);
    assert.ok(ck.header.tensors.some((t) => t.name.startsWith('opt/v')));
  });

  for (const kind of ['adam', 'sgd'] as const) {
    it(`--resume continues exactly (${kind}): 3 epochs = 1 epoch + resume to 3`, async () => {
      await tf.setBackend('native');
      const opt = () =>
        kind === 'adam'
          ? new Adam({ lr: 0.01 })
          : new SGD({ lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
      const sched = {
        kind: 'multistep',
        lr: kind === 'adam' ? 0.01 : 0.05,
        milestones: [2],
        gamma: 0.1,
      } as const;
      seedEverything(9);
      const a = makeTask();
      await fit(a, { epochs: 3, optimizer: opt(), schedule: sched, train: loader(3), log: () => {} });
      const straight = await weightsOf(a);

      const dir = mkdtempSync(join(scratch, 'run-'));
      seedEverything(9);
      const b = makeTask();
      await fit(b, {
        epochs: 1,
        optimizer: opt(),
        schedule: sched,
        train: loader(3),
        runDir: dir,
        log: () => {},
      });
      // A fresh process would rebuild the model from scratch: different initial weights are fine,
      // the checkpoint replaces them (and the RNG states).
      seedEverything(1234);
      const c = makeTask();
      const recs = await fit(c, {
        epochs: 3,
        optimizer: opt(),
        schedule: sched,
        train: loader(3),
        runDir: dir,
        resume: true,
        log: () => {},
      });
      unseed();
      assert.deepEqual(
        recs.map((r) => r.epoch),
        [1, 2, 3],
      );
      const resumed = await weightsOf(c);
      for (let i = 0; i < straight.length; i++)
        assert.deepEqual(resumed[i], straight[i], `weight ${i} differs after resume`);
    });
  }

  it('a damaged last checkpoint (truncated, or one flipped bit) falls back to previous.ckpt; same weights as straight', async () => {
    await tf.setBackend('native');
    const opt = () => new SGD({ lr: 0.05, momentum: 0.9 });
    const sched = { kind: 'constant', lr: 0.05 } as const;
    seedEverything(5);
    const a = makeTask();
    await fit(a, { epochs: 3, optimizer: opt(), schedule: sched, train: loader(3), log: () => {} });
    const straight = await weightsOf(a);
    for (const damage of ['truncate', 'flip'] as const) {
      const dir = mkdtempSync(join(scratch, 'run-'));
      seedEverything(5);
      await fit(makeTask(), {
        epochs: 2,
        optimizer: opt(),
        schedule: sched,
        train: loader(3),
        runDir: dir,
        log: () => {},
      });
      const last = join(dir, 'checkpoints', 'last.ckpt');
      const previous = join(dir, 'checkpoints', 'previous.ckpt');
      assert.equal(loadCheckpoint(previous).header.epoch, 1, 'the epoch-1 checkpoint is kept as previous');
      const bytes = readFileSync(last);
      if (damage === 'truncate') writeFileSync(last, bytes.subarray(0, bytes.length - 100));
      else {
        // One bit in the middle of the tensor data: a weight that would load as another number.
        bytes[bytes.length >> 1]! ^= 0x10;
        writeFileSync(last, bytes);
      }
      assert.throws(() => loadCheckpoint(last), /checksum mismatch \(damaged or truncated file\)/);
      const lines: string[] = [];
      seedEverything(77);
      const c = makeTask();
      const recs = await fit(c, {
        epochs: 3,
        optimizer: opt(),
        schedule: sched,
        train: loader(3),
        runDir: dir,
        resume: true,
        log: (l) => lines.push(l),
      });
      unseed();
      assert.match(
        lines.join('\n'),
        /warning: .*last\.ckpt: checksum mismatch .*resuming from .*previous\.ckpt \(epoch 1\)/,
      );
      assert.deepEqual(
        recs.map((r) => r.epoch),
        [1, 2, 3],
        `${damage}: epoch 2 is trained again`,
      );
      const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
      assert.deepEqual(
        metrics.map((l) => (JSON.parse(l) as { epoch: number }).epoch),
        [1, 2, 3],
        'metrics.jsonl lists each epoch once',
      );
      const resumed = await weightsOf(c);
      for (let i = 0; i < straight.length; i++)
        assert.deepEqual(
          resumed[i],
          straight[i],
          `${damage}: weight ${i} differs from the uninterrupted run`,
        );
    }
  });

  it('a split smaller than one batch fails before training: 0 optimizer steps is not a run', async () => {
    await tf.setBackend('native');
    const few = new BatchLoader(quadrants(10, 4), {
      batchSize: 16,
      shuffle: true,
      mean: [0.5],
      std: [0.25],
      seed: 1,
    });
    await assert.rejects(
      fit(makeTask(), {
        epochs: 1,
        optimizer: new Adam({ lr: 0.01 }),
        schedule: { kind: 'constant', lr: 0.01 },
        train: few,
        log: () => {},
      }),
      /the training split has 10 items, fewer than one batch of 16 .*0 optimizer steps per epoch/,
    );
  });

  it('weights that end non-finite fail the run naming the variable, even with finite losses', async () => {
    await tf.setBackend('native');
    const task = makeTask();
    // A trainable part the loss never reads: its NaN cannot show in any loss value.
    const x = tfl.input({ shape: [2] });
    const part = tfl.model({
      inputs: x,
      outputs: tfl.layers.dense({ units: 1, name: 'unused' }).apply(x) as tfl.SymbolicTensor,
    });
    part.setWeights(part.getWeights().map((w) => tf.fill(w.shape, Number.NaN)));
    await assert.rejects(
      fit(
        { ...task, parts: [part] },
        {
          epochs: 1,
          optimizer: new Adam({ lr: 0.01 }),
          schedule: { kind: 'constant', lr: 0.01 },
          train: loader(1),
          log: () => {},
        },
      ),
      /after epoch 1: variable .*unused.* holds non-finite values \(training diverged\)/,
    );
  });

  it('a NaN loss stops the run naming the step and the bad term', async () => {
    await tf.setBackend('native');
    const task = makeTask();
    const base = task.loss;
    let calls = 0;
    task.loss = (input) => {
      const out = base(input);
      calls++;
      if (calls < 3) return out;
      const bad = tf.mul(out.total, tf.scalar(Number.NaN)) as tf.Scalar;
      return { total: tf.add(out.total, bad) as tf.Scalar, terms: { ce: out.total, kd: bad } };
    };
    await assert.rejects(
      fit(task, {
        epochs: 1,
        optimizer: new Adam({ lr: 0.01 }),
        schedule: { kind: 'constant', lr: 0.01 },
        train: loader(1),
        log: () => {},
      }),
      /non-finite loss at epoch 1, step 3 \(global step 3\): total=NaN; terms: ce=[0-9.]+, kd=NaN/,
    );
  });

  it('resume refuses a checkpoint of another architecture and a corrupt file', async () => {
    const dir = mkdtempSync(join(scratch, 'run-'));
    seedEverything(2);
    await fit(makeTask(), {
      epochs: 1,
      optimizer: new Adam({ lr: 0.01 }),
      schedule: { kind: 'constant', lr: 0.01 },
      train: loader(1),
      runDir: dir,
      log: () => {},
    });
    const input = tfl.input({ shape: [8, 8, 1] });
    const other = tfl.model({
      inputs: input,
      outputs: tfl.layers.dense({ units: 4 }).apply(tfl.layers.flatten().apply(input)) as tfl.SymbolicTensor,
    });
    const task: TrainTask = { model: other, loss: () => ({ total: tf.scalar(0), terms: {} }) };
    await assert.rejects(
      fit(task, {
        epochs: 2,
        optimizer: new Adam({ lr: 0.01 }),
        schedule: { kind: 'constant', lr: 0.01 },
        train: loader(1),
        runDir: dir,
        resume: true,
        log: () => {},
      }),
      /has 4 weights, the model has 2/,
    );
    writeFileSync(join(dir, 'checkpoints', 'last.ckpt'), Buffer.from('RTCK garbage'));
    await assert.rejects(
      fit(makeTask(), {
        epochs: 2,
        optimizer: new Adam({ lr: 0.01 }),
        schedule: { kind: 'constant', lr: 0.01 },
        train: loader(1),
        runDir: dir,
        resume: true,
        log: () => {},
      }),
      /last\.ckpt: (not a Retort checkpoint|format version|truncated)/,
    );
    unseed();
  });
});
