/**
 * Batches streamed by a program (batchStream): the trainer reads them in the program's order and
 * gets exactly what a loader over the same arrays gives; a teacher distils from a stream without a
 * cache; each kind of bad batch is one error naming the stream, the pass and the batch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  arrayDataset,
  BatchLoader,
  batchStream,
  distill,
  evaluate,
  fit,
  type StreamBatch,
  StreamLoader,
  type TrainTask,
  takeBatches,
  train,
} from '../../src/index.js';
import { Adam } from '../../src/train/optimizers.js';
import { seedEverything, unseed } from '../../src/util/rng.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-stream-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** n 8x8 gray images: class 1 has a bright left half, class 0 a bright right half, plus noise. */
function halves(n: number, seed: number) {
  let s = seed;
  const rnd = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
  const images = new Uint8Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = (i * 7 + seed) % 2;
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++) {
        const lit = x < 4 === (labels[i] === 1);
        images[i * 64 + y * 8 + x] = Math.round((lit ? 160 : 60) + 60 * (rnd() - 0.5));
      }
  }
  return { images, labels };
}

/** The arrays as batches of `bs`, from an async generator (what reading shards from disk looks like). */
function batchesOf(d: { images: Uint8Array; labels: Int32Array }, bs: number) {
  return async function* (): AsyncGenerator<StreamBatch> {
    for (let i = 0; i < d.labels.length; i += bs) {
      const n = Math.min(bs, d.labels.length - i);
      await new Promise((r) => setImmediate(r));
      yield { x: d.images.subarray(i * 64, (i + n) * 64), y: d.labels.subarray(i, i + n) };
    }
  };
}

const mean = [0.43];
const std = [0.25];

it('a stream trains exactly as a loader over the same arrays in the same order', async () => {
  const d = halves(96, 3);
  const stream = new StreamLoader(
    batchStream({ batches: batchesOf(d, 16), shape: [8, 8, 1], numClasses: 2, mean, std, name: 'halves' }),
  );
  const memory = new BatchLoader(arrayDataset({ ...d, shape: [8, 8, 1] }), {
    batchSize: 16,
    shuffle: false,
    mean,
    std,
    seed: 0,
  });
  // Same values batch by batch.
  const [a, b] = [await takeBatches(stream), await takeBatches(memory)];
  assert.equal(a.length, 6);
  assert.equal(stream.length, 6);
  assert.equal(stream.size, 96);
  for (const [i, x] of a.entries()) {
    assert.deepEqual(x.x, b[i]!.x);
    assert.deepEqual(x.y, b[i]!.y);
    assert.deepEqual(x.index, b[i]!.index);
  }
  // Same weights after two epochs of training (the second pass re-runs the generator function).
  const weights = async (loader: StreamLoader | BatchLoader) => {
    seedEverything(5);
    const input = tfl.input({ shape: [8, 8, 1] });
    const flat = tfl.layers.flatten().apply(input);
    const out = tfl.layers.dense({ units: 2 }).apply(flat) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: input, outputs: out });
    const task: TrainTask = {
      model,
      loss: ({ x, y }) => {
        const logits = model.apply(x, { training: true }) as tf.Tensor;
        const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(y, 2), logits) as tf.Scalar;
        return { total: ce, terms: { ce }, logits };
      },
    };
    const recs = await fit(task, {
      epochs: 2,
      optimizer: new Adam({ lr: 0.01 }),
      schedule: { kind: 'constant', lr: 0.01 },
      train: loader,
      val: loader,
      log: () => {},
    });
    const w = model.getWeights().map((t) => Array.from(t.dataSync()));
    unseed();
    return { w, recs };
  };
  const fromStream = await weights(stream);
  const fromMemory = await weights(memory);
  assert.deepEqual(fromStream.w, fromMemory.w);
  assert.equal(fromStream.recs[1]!.valTop1, fromMemory.recs[1]!.valTop1);
  assert.equal(fromStream.recs[1]!.trainLoss, fromMemory.recs[1]!.trainLoss);
  tf.disposeVariables();
});

it('train() and distill() take streamed splits; the teacher runs on every batch, uncached', async () => {
  const tr = halves(256, 1);
  const te = halves(64, 2);
  const data = {
    train: batchStream({ batches: batchesOf(tr, 32), shape: [8, 8, 1], numClasses: 2, mean, std }),
    test: batchStream({
      batches: () => batchesOf(te, 64)(),
      shape: [8, 8, 1],
      numClasses: 2,
      classNames: ['right', 'left'],
      name: 'halves/test',
    }),
  };
  const optimizer = { name: 'adam', lr: 0.01 } as const;
  const teacher = await train(
    { name: 'tstream', model: { name: 'mlp' }, data: { dataset: 'code' }, epochs: 3, optimizer },
    { runsRoot: scratch, data, log: () => {} },
  );
  assert.ok(teacher.testTop1 >= 95, `teacher top-1 ${teacher.testTop1}`);
  const lines: string[] = [];
  const student = await distill(
    {
      name: 'sstream',
      model: { name: 'mlp' },
      data: { dataset: 'code' },
      teacher: { model: { name: 'mlp' }, run: teacher.runDir },
      losses: [
        { name: 'ce', weight: 0.5 },
        { name: 'kd', weight: 0.5, T: 4 },
      ],
      epochs: 2,
      optimizer,
    },
    { runsRoot: scratch, data, log: (l) => lines.push(l) },
  );
  assert.ok(student.testTop1 >= 90, `student top-1 ${student.testTop1}`);
  assert.ok(
    lines.some((l) => /teacher outputs not cached: the training split is streamed/.test(l)),
    lines.join('\n'),
  );
  // The test stream evaluates like the same arrays in memory.
  const memTest = new BatchLoader(arrayDataset({ ...te, shape: [8, 8, 1] }), {
    batchSize: 500,
    shuffle: false,
    keepLast: true,
    mean,
    std,
    seed: 0,
  });
  const { loadRun } = await import('../../src/index.js');
  const back = await loadRun(student.runDir, 'test', data);
  assert.equal((await evaluate(back.model, memTest)).top1, student.testTop1);
  tf.disposeVariables();
});

it('refuses what a stream cannot give, naming the key', async () => {
  const d = halves(32, 1);
  const s = batchStream({ batches: batchesOf(d, 16), shape: [8, 8, 1], numClasses: 2 });
  const run = (data: Record<string, unknown>) =>
    train(
      { name: 'r', model: { name: 'mlp' }, data: { dataset: 'code', ...data }, epochs: 1 },
      { runsRoot: scratch, data: { train: s, test: s }, log: () => {} },
    );
  await assert.rejects(
    run({ valFraction: 0.2 }),
    /data\.valFraction: a validation split needs random access/,
  );
  await assert.rejects(run({ hflip: true }), /data\.hflip: augment inside your stream/);
  await assert.rejects(run({ trainLimit: 8 }), /data\.trainLimit: a stream ends where your program ends it/);
  await assert.rejects(
    train(
      { name: 'r3', model: { name: 'mlp' }, data: { dataset: 'code' }, epochs: 1 },
      {
        runsRoot: scratch,
        data: { train: arrayDataset({ ...d, shape: [8, 8, 1] }), test: s },
        log: () => {},
      },
    ),
    /data: stream is streamed but the training split arrays is not; stream both, or give the test split as arrays too/,
  );
  const other = batchStream({ batches: batchesOf(d, 16), shape: [8, 8, 1], numClasses: 2, mean: [0.5] });
  await assert.rejects(
    train(
      { name: 'r2', model: { name: 'mlp' }, data: { dataset: 'code' }, epochs: 1 },
      { runsRoot: scratch, data: { train: s, test: other }, log: () => {} },
    ),
    /stream: mean\/std \[0\.5\]\/\[1\] differ from the training split's \[0\]\/\[1\]/,
  );
  assert.throws(
    () => batchStream({ batches: [], shape: [8, 8], numClasses: 2 } as never),
    /shape \[8, 8\] is not \[H, W, C\]/,
  );
  assert.throws(
    () => batchStream({ batches: 5 as never, shape: [8, 8, 1], numClasses: 2 }),
    /batches must be/,
  );
  assert.throws(
    () => batchStream({ batches: [], shape: [8, 8, 1], numClasses: 2, classNames: ['a'] }),
    /1 class names for 2 classes/,
  );
});

it('each bad batch is one error naming the stream, pass and batch', async () => {
  const read = (batches: StreamBatch[] | (() => AsyncGenerator<StreamBatch>)) =>
    takeBatches(new StreamLoader(batchStream({ batches, shape: [2, 2, 1], numClasses: 3, name: 'shards' })));
  const x4 = new Float32Array(4);
  await assert.rejects(
    read([
      { x: x4, y: [0] },
      { x: new Float32Array(7), y: [1, 2] },
    ]),
    /shards: batch 2 of pass 1: x has 7 values for 2 labels of \[2, 2, 1\] \(8 expected\)/,
  );
  await assert.rejects(
    read([{ x: x4, y: [3] }]),
    /shards: batch 1 of pass 1: label 3 at item 0 is not a class index in 0\.\.2/,
  );
  await assert.rejects(
    read([{ x: Float32Array.of(0, 1, Number.NaN, 2), y: [1] }]),
    /batch 1 of pass 1: non-finite value NaN in item 0/,
  );
  await assert.rejects(read([{ x: [0, 0, 0, 0] as never, y: [1] }]), /x is Array; expected a Float32Array/);
  await assert.rejects(read([]), /shards: the stream yielded no batches/);
  await assert.rejects(
    read((async () => [{ x: x4, y: [1] }]) as never),
    /shards: batches\(\) returned Promise, not an iterable of \{x, y\} \(an async function returns a Promise/,
  );
  // A generator object runs once: the second epoch says so instead of training on nothing.
  const gen = (async function* () {
    yield { x: x4, y: [1] };
  })();
  const loader = new StreamLoader(
    batchStream({ batches: gen, shape: [2, 2, 1], numClasses: 3, name: 'once' }),
  );
  assert.equal((await takeBatches(loader)).length, 1);
  await assert.rejects(
    takeBatches(loader),
    /once: pass 2 yielded no batches \(pass 1 had 1\); a generator object runs once/,
  );
  // Tensors are accepted, and uint8 values are scaled by 1/255 before mean/std.
  const t = await takeBatches(
    new StreamLoader(
      batchStream({
        batches: [{ x: tf.tensor4d([0, 255, 51, 102], [1, 2, 2, 1]), y: tf.tensor1d([2], 'int32') }],
        shape: [2, 2, 1],
        numClasses: 3,
      }),
    ),
  );
  assert.deepEqual(Array.from(t[0]!.x), [0, 255, 51, 102]);
  const u = await takeBatches(
    new StreamLoader(
      batchStream({
        batches: [{ x: Uint8Array.of(0, 255, 51, 102), y: [2] }],
        shape: [2, 2, 1],
        numClasses: 3,
        mean: [0.2],
        std: [0.5],
      }),
    ),
  );
  const want = [-0.4, 1.6, 0, 0.4];
  for (const [i, v] of u[0]!.x.entries()) assert.ok(Math.abs(v - want[i]!) < 1e-6, `${v} vs ${want[i]}`);
});
