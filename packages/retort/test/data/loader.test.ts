import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { channelStats, type ImageDataset, trainValSplit, validateDataset } from '../../src/data/dataset.js';
import { BatchLoader } from '../../src/data/loader.js';
import { Rng } from '../../src/util/rng.js';

// 3 images of 2x3 pixels, 2 channels; pixel value encodes (image, row, col, channel).
const images = new Uint8Array(3 * 2 * 3 * 2);
for (let i = 0; i < images.length; i++) images[i] = i;
const ds: ImageDataset = {
  name: 't',
  images,
  labels: new Uint8Array([0, 1, 2]),
  count: 3,
  height: 2,
  width: 3,
  channels: 2,
  numClasses: 3,
};
const norm = { mean: [0, 0], std: [1 / 255, 1 / 255] }; // identity on raw pixel values

describe('BatchLoader', () => {
  it('normalises per channel, batches, keeps or drops the last batch', () => {
    const l = new BatchLoader(ds, {
      batchSize: 2,
      shuffle: false,
      keepLast: true,
      mean: [0.5, 0],
      std: [0.5, 1],
      seed: 1,
    });
    const bs = [...l.epoch()];
    assert.equal(bs.length, 2);
    assert.equal(bs[1]!.n, 1);
    assert.ok(Math.abs(bs[0]!.x[0]! - (0 / 255 - 0.5) / 0.5) < 1e-6);
    assert.ok(Math.abs(bs[0]!.x[1]! - 1 / 255) < 1e-6);
    assert.deepEqual(Array.from(bs[1]!.y), [2]);
    assert.deepEqual(Array.from(bs[1]!.index), [2]);
    assert.equal(
      [...new BatchLoader(ds, { batchSize: 2, shuffle: false, ...norm, seed: 1 }).epoch()].length,
      1,
    );
  });
  it('seeded shuffling is a permutation and repeatable', () => {
    const order = (seed: number) =>
      [...new BatchLoader(ds, { batchSize: 1, shuffle: true, ...norm, seed }).epoch()].map((b) => b.index[0]);
    assert.deepEqual(order(4), order(4));
    assert.deepEqual([...order(4)].sort(), [0, 1, 2]);
  });
  it('flip mirrors columns; crop shifts with zero fill', () => {
    const l = new BatchLoader(ds, { batchSize: 1, shuffle: false, ...norm, hflip: true, seed: 3 });
    let flipped = 0;
    for (let t = 0; t < 40; t++) {
      const b = l.makeBatch(Uint32Array.of(0));
      const row0 = Array.from(b.x.subarray(0, 6)).map(Math.round);
      if (row0[0] === 4) {
        flipped++;
        assert.deepEqual(row0, [4, 5, 2, 3, 0, 1]);
      } else assert.deepEqual(row0, [0, 1, 2, 3, 4, 5]);
    }
    assert.ok(flipped > 5 && flipped < 35, `flipped ${flipped}/40`);
    const c = new BatchLoader(ds, { batchSize: 1, shuffle: false, ...norm, cropPadding: 1, seed: 5 });
    let zeros = 0;
    for (let t = 0; t < 20; t++)
      zeros += Array.from(c.makeBatch(Uint32Array.of(1)).x).filter((v) => Math.round(v) === 0).length;
    assert.ok(zeros > 0, 'crops never reached the zero padding');
  });
  it('rejects mismatched stats, counts and labels', () => {
    assert.throws(
      () => new BatchLoader(ds, { batchSize: 1, shuffle: false, mean: [0], std: [1], seed: 1 }),
      /t: mean\/std have 1\/1 entries for 2 channels/,
    );
    assert.throws(
      () => validateDataset({ ...ds, labels: new Uint8Array([0, 1]) }),
      /t: 2 labels for 3 images/,
    );
    assert.throws(
      () => validateDataset({ ...ds, labels: new Uint8Array([0, 1, 3]) }),
      /1 label\(s\) outside 0\.\.2; the first is 3 at index 2/,
    );
  });
  it('channel stats and train/val split', () => {
    const { mean } = channelStats(ds);
    assert.ok(Math.abs(mean[0]! - 17 / 255) < 1e-9 && Math.abs(mean[1]! - 18 / 255) < 1e-9);
    const s = trainValSplit(10, 0.2, new Rng(1).permutation(10));
    assert.equal(s.val.length, 2);
    assert.deepEqual(
      [...s.train, ...s.val].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });
});
