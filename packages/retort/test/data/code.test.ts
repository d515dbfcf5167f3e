/**
 * Data from code: splits a program builds from its own arrays (arrayDataset) train a model through
 * the public API with no file involved, the run loads back with the same splits, and the refusals
 * say what is missing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset, evaluate, loadRun, train } from '../../src/index.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-code-data-'));
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
    labels[i] = i % 2;
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++) {
        const lit = x < 4 === (labels[i] === 1);
        images[i * 64 + y * 8 + x] = Math.round((lit ? 160 : 60) + 60 * (rnd() - 0.5));
      }
  }
  return { images, labels, shape: [8, 8, 1] as const, classNames: ['right', 'left'] };
}

it('trains on arrays through train(), loads back with the same splits', async () => {
  const data = {
    train: arrayDataset({ ...halves(256, 1), name: 'halves/train' }),
    test: arrayDataset({ ...halves(64, 2), name: 'halves/test' }),
  };
  const res = await train(
    {
      name: 'halves',
      model: { name: 'mlp' },
      data: { batchSize: 32 },
      epochs: 3,
      optimizer: { name: 'adam', lr: 0.01 },
    },
    { runsRoot: scratch, data, log: () => {} },
  );
  assert.ok(res.testTop1 >= 95, `test top-1 ${res.testTop1}`);
  const back = await loadRun(res.runDir, 'test', data);
  assert.equal((await evaluate(back.model, back.data.test)).top1, res.testTop1);
  assert.deepEqual(back.data.classNames, ['right', 'left']);
  await assert.rejects(
    loadRun(res.runDir, 'test'),
    /data\.dataset is 'code': pass the splits from your program/,
  );
  tf.disposeVariables();
});

it('refuses arrays that do not fit, and splits given to a file reader', async () => {
  const h = halves(4, 1);
  assert.throws(
    () => arrayDataset({ ...h, labels: [0, 1, 0] }),
    /arrays: 256 pixel values for 3 images of 8x8x1/,
  );
  assert.throws(() => arrayDataset({ ...h, shape: [8, 8, 3] }), /pixel values for 4 images of 8x8x3/);
  const data = { train: arrayDataset(h), test: arrayDataset(h) };
  await assert.rejects(
    train(
      { name: 'x', model: { name: 'mlp' }, data: { dataset: 'fashion-mnist' } },
      { runsRoot: scratch, data },
    ),
    /splits from code need data\.dataset 'code', not 'fashion-mnist'/,
  );
});
