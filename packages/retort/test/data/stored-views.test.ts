/**
 * Stored views (`data.views.<side>: { kind: stored, ... }`): a second modality read from its own
 * files and paired with the data item by item. Two image folders written here, an RGB one and a
 * grayscale "depth" one whose value at each pixel is the RGB image's red byte, so a correctly paired
 * and identically augmented sample has teacherX equal to channel 0 of x; IDX pairs for labels.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';
import { parseOrThrow } from '../../src/config/errors.js';
import { dataSchema, experimentSchema } from '../../src/config/experiment.js';
import { resolveConfigPaths } from '../../src/config/paths.js';
import { buildData } from '../../src/data/build.js';
import { arrayDataset, channelStats } from '../../src/data/dataset.js';
import type { Batch, BatchLoader } from '../../src/data/loader.js';
import { sidecarFor } from '../../src/export/sidecar.js';
import { buildModel } from '../../src/models/index.js';
import { runExperiment } from '../../src/run/experiment.js';
import { teacherDataOf } from '../../src/teachers/load.js';
import { loadCheckpoint, saveModelWeights } from '../../src/train/checkpoint.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-stored-views-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const fresh = () => mkdtempSync(join(scratch, 'd-'));

const S = 8; // image side
/** Red byte of sample (split, class k, file j) at (y, x): distinct per sample, not mirror-symmetric. */
const red = (split: string, k: number, j: number, y: number, x: number) =>
  ((split === 'test' ? 128 : 0) + k * 61 + j * 13 + y * 8 + x * 3) % 256;

function writePng(path: string, side: number, px: (y: number, x: number) => number[], gray = false) {
  const png = new PNG({ width: side, height: side });
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) png.data.set(px(y, x), (y * side + x) * 4);
  writeFileSync(path, PNG.sync.write(png, gray ? { colorType: 0 } : {}));
}

/**
 * rgb/{train,test}/{a,b}/<j>.png and depth/... (grayscale, the red byte; every `step`-th pixel when
 * `step` > 1, a smaller image): `perClass` train images per class, 2 test images.
 */
function pairedFolders(perClass = 8, step = 1): { rgb: string; depth: string } {
  const root = fresh();
  const rgb = join(root, 'rgb');
  const depth = join(root, 'depth');
  for (const split of ['train', 'test'])
    for (const [k, cls] of ['a', 'b'].entries())
      for (let j = 0; j < (split === 'train' ? perClass : 2); j++) {
        for (const d of [rgb, depth]) mkdirSync(join(d, split, cls), { recursive: true });
        const name = `${String(j).padStart(2, '0')}.png`;
        writePng(join(rgb, split, cls, name), S, (y, x) => {
          const r = red(split, k, j, y, x);
          return [r, 255 - r, (r * 7) % 256, 255];
        });
        writePng(
          join(depth, split, cls, name),
          S / step,
          (y, x) => {
            const r = red(split, k, j, y * step, x * step);
            return [r, r, r, 255];
          },
          true,
        );
      }
  return { rgb, depth };
}

const unit = { mean: [0], std: [1] };
const dataCfg = (over: Record<string, unknown>) =>
  parseOrThrow(dataSchema, { dataset: 'image-folder', batchSize: 4, ...over }, 'x.yaml');

/** Channel `c` of an [n, H, W, C] array. */
function channel(x: Float32Array, C: number, c: number): Float32Array {
  return Float32Array.from({ length: x.length / C }, (_, i) => x[i * C + c]!);
}

/** Every batch of a loader's epoch. */
const batches = (l: unknown): Batch[] => [...(l as BatchLoader).epoch()];

describe('stored views: pairing and augmentation', () => {
  it('x and teacherX are the paired samples, shuffled, cropped and flipped alike; val pairs too', () => {
    const { rgb, depth } = pairedFolders();
    const cfg = dataCfg({
      dir: rgb,
      normalize: unit,
      cropPadding: 2,
      hflip: true,
      valFraction: 0.25,
      views: {
        teacher: { kind: 'stored', dataset: 'image-folder', dir: depth, channels: 1, normalize: unit },
      },
    });
    const data = buildData(cfg, 3);
    assert.deepEqual(data.shape, [S, S, 3]);
    assert.deepEqual(data.teacherShape, [S, S, 1]);
    const plain = new Map<number, Float32Array>();
    // Without augmentation, teacherX is the red byte of the same sample.
    for (const b of [...batches(data.trainPlain), ...batches(data.val), ...batches(data.test)])
      assert.deepEqual(b.teacherX, channel(b.x, 3, 0), 'plain batches pair');
    for (const b of batches(data.trainPlain))
      for (let k = 0; k < b.n; k++) plain.set(b.index[k]!, b.x.subarray(k * S * S * 3, (k + 1) * S * S * 3));
    let augmented = 0;
    const order: number[] = [];
    for (const b of batches(data.train)) {
      order.push(...b.index);
      // Zero fill on both (mean 0): equal everywhere iff the same offset and flip.
      assert.deepEqual(b.teacherX, channel(b.x, 3, 0), 'augmented batches pair');
      for (let k = 0; k < b.n; k++) {
        const x = b.x.subarray(k * S * S * 3, (k + 1) * S * S * 3);
        if (x.some((v, i) => v !== plain.get(b.index[k]!)![i])) augmented++;
      }
    }
    assert.ok(augmented > 4, `augmentation applied (${augmented} of 12 samples changed)`);
    assert.notDeepEqual(
      order,
      [...order].sort((a, b) => a - b),
      'shuffled',
    );
    // Streamed folders (decoded per batch) pair the same way.
    const streamed = buildData({ ...cfg, stream: true }, 3);
    assert.deepEqual(batches(streamed.train), batches(buildData(cfg, 3).train));
  });

  it('a smaller 1-channel view: its own shape and statistics, the same flips; crops refused', () => {
    const { rgb, depth } = pairedFolders(4, 2);
    const view = { kind: 'stored', dataset: 'image-folder', dir: depth, channels: 1 };
    const data = buildData(dataCfg({ dir: rgb, hflip: true, views: { teacher: view } }), 1);
    assert.deepEqual(data.teacherShape, [S / 2, S / 2, 1]);
    // Default normalisation: each source's own training statistics.
    const own = buildData(dataCfg({ dir: depth, channels: 1 }), 1);
    assert.deepEqual(data.teacherMean, own.mean);
    assert.deepEqual(data.teacherStd, own.std);
    assert.notDeepEqual(data.mean, own.mean);
    assert.equal(data.mean.length, 3);
    // An external teacher adapts from its view's normalisation, not the RGB data's.
    assert.deepEqual(teacherDataOf(data).mean, own.mean);
    assert.deepEqual(teacherDataOf(data).shape, [S / 2, S / 2, 1]);
    const plainT = new Map<number, Float32Array>();
    const plainX = new Map<number, Float32Array>();
    const H = S / 2;
    for (const b of batches(data.trainPlain))
      for (let k = 0; k < b.n; k++) {
        plainT.set(b.index[k]!, b.teacherX!.slice(k * H * H, (k + 1) * H * H));
        plainX.set(b.index[k]!, b.x.slice(k * S * S * 3, (k + 1) * S * S * 3));
      }
    const mirror = (a: Float32Array, side: number, C: number) =>
      Float32Array.from(a, (_, i) => {
        const c = i % C;
        const p = (i - c) / C;
        return a[(Math.floor(p / side) * side + side - 1 - (p % side)) * C + c]!;
      });
    let flipped = 0;
    for (const b of batches(data.train))
      for (let k = 0; k < b.n; k++) {
        const i = b.index[k]!;
        const x = b.x.slice(k * S * S * 3, (k + 1) * S * S * 3);
        const t = b.teacherX!.slice(k * H * H, (k + 1) * H * H);
        const flip = x.some((v, j) => v !== plainX.get(i)![j]);
        if (flip) flipped++;
        assert.deepEqual(x, flip ? mirror(plainX.get(i)!, S, 3) : plainX.get(i)!);
        assert.deepEqual(t, flip ? mirror(plainT.get(i)!, H, 1) : plainT.get(i)!, `sample ${i}: one flip`);
      }
    assert.ok(flipped > 0 && flipped < 8, `${flipped} of 8 flipped`);
    assert.throws(
      () => buildData(dataCfg({ dir: rgb, cropPadding: 1, views: { teacher: view } }), 1),
      /data\.views\.teacher: the stored images .* are 4x4 and the data's .* 8x8; cropPadding/,
    );
  });

  it('a stored student: built for its modality, normalised with its statistics, exported with its formula', () => {
    const { rgb, depth } = pairedFolders(4);
    const data = buildData(
      dataCfg({
        dir: rgb,
        views: { student: { kind: 'stored', dataset: 'image-folder', dir: depth, channels: 1 } },
      }),
      1,
    );
    assert.deepEqual(data.shape, [S, S, 1]);
    assert.deepEqual(data.teacherShape, [S, S, 3]);
    const own = buildData(dataCfg({ dir: depth, channels: 1 }), 1);
    assert.deepEqual([data.mean, data.std], [own.mean, own.std]);
    assert.equal(data.teacherMean!.length, 3);
    const b = batches(data.test)[0]!;
    assert.equal(b.x.length, b.n * S * S);
    assert.equal(b.teacherX!.length, b.n * S * S * 3);
    const side = sidecarFor('onnx', 'm.onnx', data);
    assert.deepEqual(side.input.shape, [S, S, 1]);
    assert.deepEqual(side.input.mean, own.mean);
    assert.match(side.input.formula, /8-bit pixels p of the stored view \(image-folder .*depth\)/);
  });
});

describe('stored views: refusals, cache key, config', () => {
  it('a count, file-name or label mismatch is one error naming both folders, the split and the index', () => {
    const { rgb, depth } = pairedFolders(3);
    const cfg = (d: string, over: Record<string, unknown> = {}) =>
      dataCfg({ dir: rgb, views: { teacher: { kind: 'stored', dataset: 'image-folder', dir: d } }, ...over });
    rmSync(join(depth, 'test', 'b', '01.png'));
    assert.throws(
      () => buildData(cfg(depth), 1),
      (e: Error) =>
        e.message.includes(`data.views.teacher: the test split of ${depth} does not pair with ${rgb}`) &&
        /3 items against 4; each sample needs one of each/.test(e.message),
    );
    // Limits apply to both sources: 2 test items each pair again.
    assert.equal(buildData(cfg(depth, { testLimit: 2 }), 1).test.size, 2);
    const d2 = join(scratch, 'depth-renamed');
    cpSync(depth, d2, { recursive: true });
    rmSync(join(d2, 'test'), { recursive: true });
    cpSync(join(rgb, 'test'), join(d2, 'test'), { recursive: true });
    renameSync(join(d2, 'train', 'a', '02.png'), join(d2, 'train', 'a', '07.png'));
    // Round-robin order a/00 b/00 a/01 b/01 a/02 b/02: item 4 is a/02.
    assert.throws(
      () => buildData(cfg(d2), 1),
      (e: Error) =>
        e.message.includes(
          `the train split of ${d2} does not pair with ${rgb}: item 4 is a/02.png in ${rgb}`,
        ) && e.message.includes('a/07.png'),
    );
  });

  it('IDX pairs: labels must agree index by index', () => {
    const idx = (dims: number[], data: Uint8Array) => {
      const h = Buffer.alloc(4 + 4 * dims.length);
      h.writeUInt32BE(0x800 + dims.length, 0);
      for (const [i, d] of dims.entries()) h.writeUInt32BE(d, 4 + 4 * i);
      return Buffer.concat([h, data]);
    };
    const write = (labels: number[]) => {
      const dir = fresh();
      const n = labels.length;
      const px = Uint8Array.from({ length: n * 16 }, (_, i) => (i * 7) % 256);
      for (const s of ['train', 't10k']) {
        writeFileSync(join(dir, `${s}-images-idx3-ubyte`), idx([n, 4, 4], px));
        writeFileSync(join(dir, `${s}-labels-idx1-ubyte`), idx([n], Uint8Array.from(labels)));
      }
      return dir;
    };
    const a = write([0, 1, 2, 3, 0, 1]);
    const b = write([0, 1, 2, 4, 0, 1]);
    const cfg = parseOrThrow(
      dataSchema,
      { dataset: 'mnist', dir: a, views: { student: { kind: 'stored', dataset: 'mnist', dir: b } } },
      'x.yaml',
    );
    assert.throws(
      () => buildData(cfg, 1),
      new RegExp(
        `data\\.views\\.student: the train split of ${b} does not pair with ${a}: item 3 has label 3 in ${a} and 4 in ${b}`,
      ),
    );
    assert.deepEqual(buildData({ ...cfg, trainLimit: 3, testLimit: 3 }, 1).shape, [4, 4, 1]);
  });

  it('the cache key names the stored source: another folder, its normalisation or its bytes is another key', () => {
    const { rgb, depth } = pairedFolders(2);
    const other = join(scratch, 'depth-copy');
    cpSync(depth, other, { recursive: true });
    const key = (view: Record<string, unknown>) =>
      buildData(
        dataCfg({ dir: rgb, views: { teacher: { kind: 'stored', dataset: 'image-folder', ...view } } }),
        1,
      ).key;
    const k = key({ dir: depth, channels: 1 });
    assert.equal(key({ dir: depth, channels: 1 }), k);
    assert.notEqual(key({ dir: other, channels: 1 }), k, 'another folder');
    assert.notEqual(key({ dir: depth, channels: 3 }), k, 'another decoding');
    assert.notEqual(key({ dir: depth, channels: 1, normalize: unit }), k, 'another normalisation');
    assert.notEqual(buildData(dataCfg({ dir: rgb, views: {} }), 1).key, k);
    // Edited in place at fixed normalisation: only the bytes changed.
    const before = key({ dir: other, channels: 1, normalize: unit });
    writePng(join(other, 'train', 'a', '00.png'), S, () => [9, 9, 9, 255], true);
    assert.notEqual(key({ dir: other, channels: 1, normalize: unit }), before, 'other bytes');
  });

  it('config: reader options checked per source; paths resolved; views from code', () => {
    assert.throws(
      () =>
        parseOrThrow(
          dataSchema,
          { views: { teacher: { kind: 'stored', dataset: 'mnist', channels: 1, dir: 'd' } } },
          'x.yaml',
        ),
      /views\.teacher\.channels.*image-folder/s,
    );
    assert.throws(
      () =>
        parseOrThrow(dataSchema, { views: { teacher: { kind: 'stored', dataset: 'cifar10' } } }, 'x.yaml'),
      /views\.teacher\.dir/,
    );
    assert.throws(
      () => parseOrThrow(dataSchema, { views: { teacher: { kind: 'stored', dataset: 'code' } } }, 'x.yaml'),
      /needs data\.dataset 'code'/,
    );
    const raw = { data: { dir: 'rgb', views: { teacher: { kind: 'stored', dir: 'depth' } } } };
    resolveConfigPaths(raw, '/cfg');
    assert.deepEqual(raw.data, {
      dir: '/cfg/rgb',
      views: { teacher: { kind: 'stored', dir: '/cfg/depth' } },
    });
    // Through the API: a second array dataset per split for the teacher.
    const shape = [4, 4, 1] as const;
    const labels = [0, 1, 0, 1, 0, 1];
    const imgs = (v: number) => Uint8Array.from({ length: 6 * 16 }, (_, i) => (i * v) % 256);
    const given = {
      train: arrayDataset({ images: imgs(3), labels, shape }),
      test: arrayDataset({ images: imgs(5), labels, shape }),
      views: {
        teacher: {
          train: arrayDataset({ images: imgs(7).slice(0, 6 * 4 * 3), labels, shape: [2, 2, 3] }),
          test: arrayDataset({ images: imgs(11).slice(0, 6 * 4 * 3), labels, shape: [2, 2, 3] }),
        },
      },
    };
    const cfg = parseOrThrow(
      dataSchema,
      {
        dataset: 'code',
        batchSize: 6,
        views: { teacher: { kind: 'stored', dataset: 'code', normalize: unit } },
      },
      'x.yaml',
    );
    const data = buildData(cfg, 1, given);
    assert.deepEqual(data.teacherShape, [2, 2, 3]);
    const b = batches(data.test)[0]!;
    assert.deepEqual(
      b.teacherX,
      Float32Array.from(given.views.teacher.test.images as Uint8Array, (v) => v / 255),
    );
    assert.throws(() => buildData(cfg, 1, { train: given.train, test: given.test }), /pass its splits/);
    assert.throws(
      () => buildData({ ...cfg, views: undefined }, 1, given),
      /carry views\.teacher, but data\.views\.teacher is not/,
    );
    assert.deepEqual(channelStats(given.train).mean, data.mean);
    const relabelled = { ...given.views.teacher.train, labels: Int32Array.from([0, 1, 0, 0, 0, 1]) };
    assert.throws(
      () =>
        buildData(cfg, 1, { ...given, views: { teacher: { ...given.views.teacher, train: relabelled } } }),
      /data\.views\.teacher: the train split of the views\.teacher arrays from code does not pair with the arrays from code: item 3 has label 1 in the arrays from code and 0 in/,
    );
  });
});

describe('cross-modal KD run from a stored view', () => {
  it('the teacher runs (and is cached) on the stored depth images, the student on RGB', async () => {
    await tf.setBackend('native');
    const { rgb, depth } = pairedFolders(8);
    const ckpt = join(scratch, 'depth-teacher.ckpt');
    const teacher = buildModel('mlp', { inputShape: [S, S, 1], numClasses: 2, seed: 2, hidden: 8 });
    saveModelWeights(ckpt, teacher, {});
    const lines: string[] = [];
    const dataSection = {
      dataset: 'image-folder',
      dir: rgb,
      batchSize: 8,
      views: { teacher: { kind: 'stored', dataset: 'image-folder', dir: depth, channels: 1 } },
    } as const;
    const r = await runExperiment(
      experimentSchema.parse({
        name: 'stored-xmodal',
        data: dataSection,
        model: { name: 'mlp', options: { hidden: 4 } },
        teacher: { model: { name: 'mlp', options: { hidden: 8 } }, checkpoint: ckpt },
        losses: [
          { name: 'ce', weight: 0.5 },
          { name: 'kd', weight: 0.5, T: 2 },
        ],
        optimizer: { name: 'adam', lr: 0.003 },
        epochs: 1,
      }),
      'x.yaml',
      { runsRoot: scratch, log: (l) => lines.push(l) },
    );
    assert.equal(r.params, S * S * 3 * 4 + 4 + 4 * 2 + 2, 'the student is an MLP over RGB');
    const cached = lines.find((l) => l.startsWith('teacher logits cached in '))!.slice(25);
    const c = loadCheckpoint(cached).values.get('logits')!;
    const data = buildData(parseOrThrow(dataSchema, dataSection, 'x.yaml'), 0);
    const first = batches(data.trainPlain)[0]!;
    const want = (teacher.predict(tf.tensor4d(first.teacherX!, [first.n, S, S, 1])) as tf.Tensor).dataSync();
    for (let i = 0; i < 2 * first.n; i++)
      assert.ok(
        Math.abs(c.data[i]! - want[i]!) < 1e-5,
        `teacher logit ${i} on depth: ${c.data[i]} vs ${want[i]}`,
      );
    teacher.dispose();
  });
});
