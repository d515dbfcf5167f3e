/**
 * buildData's dispatch on `data.dataset` over small synthetic folders (CIFAR, image folder, CSV) and
 * the installed Fashion-MNIST, the cache key, and the config checks of the `data` section.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { parseOrThrow } from '../../src/config/errors.js';
import { dataSchema, experimentSchema } from '../../src/config/experiment.js';
import { buildData, type DataConfig } from '../../src/data/build.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-build-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const fresh = () => mkdtempSync(join(scratch, 'd-'));

const base = { batchSize: 4, valFraction: 0, cropPadding: 0, hflip: false } as const;

/** `n` CIFAR-10 records with labels 0, 1, 2, ... (mod 10) and pixel bytes from the index. */
function cifarRecords(n: number, from = 0): Uint8Array {
  const out = new Uint8Array(n * 3073);
  for (let i = 0; i < n; i++) {
    out[i * 3073] = (from + i) % 10;
    for (let p = 0; p < 3072; p++) out[i * 3073 + 1 + p] = (p + i) % 256;
  }
  return out;
}

function writePng(path: string, w: number, h: number, v: number) {
  const png = new PNG({ width: w, height: h });
  for (let i = 0; i < w * h; i++) png.data.set([v, 255 - v, v, 255], i * 4);
  writeFileSync(path, PNG.sync.write(png));
}

/** root/{train,test}/{a,b}: two 4x3 images per class and split. */
function imageRoot(): string {
  const root = fresh();
  for (const split of ['train', 'test'])
    for (const [k, cls] of ['a', 'b'].entries()) {
      mkdirSync(join(root, split, cls), { recursive: true });
      for (const f of ['1', '2']) writePng(join(root, split, cls, `${f}.png`), 4, 3, 60 * k + Number(f));
    }
  return root;
}

describe('buildData dispatch', () => {
  it('cifar10: 32x32x3 loaders over the binary batches; limits applied', () => {
    const dir = fresh();
    for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), cifarRecords(3, 3 * b));
    writeFileSync(join(dir, 'test_batch.bin'), cifarRecords(4));
    const data = buildData({ ...base, dataset: 'cifar10', dir, trainLimit: 10 }, 1);
    assert.deepEqual(data.shape, [32, 32, 3]);
    assert.equal(data.numClasses, 10);
    assert.equal(data.train.size, 10);
    assert.equal(data.test.size, 4);
    assert.equal(data.mean.length, 3);
    const batch = data.test.epoch().next().value!;
    assert.deepEqual(Array.from(batch.y), [0, 1, 2, 3]);
  });

  it('cifar100: fine labels, 100 classes', () => {
    const dir = fresh();
    const rec = (coarse: number, fine: number) => {
      const r = new Uint8Array(3074);
      r.set([coarse, fine]);
      r.fill(fine, 2);
      return r;
    };
    writeFileSync(join(dir, 'train.bin'), Buffer.concat([rec(1, 10), rec(2, 20), rec(3, 30)]));
    writeFileSync(join(dir, 'test.bin'), rec(4, 99));
    const data = buildData({ ...base, dataset: 'cifar100', dir }, 1);
    assert.equal(data.numClasses, 100);
    assert.deepEqual(Array.from(data.test.epoch().next().value!.y), [99]);
  });

  it('image-folder: channels option, limit keeps every class, key differs by channels', () => {
    const dir = imageRoot();
    const rgb = buildData({ ...base, dataset: 'image-folder', dir, trainLimit: 2 }, 1);
    assert.deepEqual(rgb.shape, [3, 4, 3]);
    assert.equal(rgb.numClasses, 2);
    assert.equal(rgb.train.size, 2);
    assert.deepEqual(Array.from(rgb.trainPlain.epoch().next().value!.y), [0, 1]);
    const gray = buildData({ ...base, dataset: 'image-folder', dir, channels: 1 }, 1);
    assert.deepEqual(gray.shape, [3, 4, 1]);
    assert.notEqual(gray.key, rgb.key);
    assert.equal(JSON.parse(gray.key).channels, 1);
  });

  it('image-folder: train and test must agree on classes and size', () => {
    const dir = imageRoot();
    mkdirSync(join(dir, 'test', 'c'));
    writePng(join(dir, 'test', 'c', '1.png'), 4, 3, 0);
    assert.throws(
      () => buildData({ ...base, dataset: 'image-folder', dir }, 1),
      /test classes \(a, b, c\) differ from train classes \(a, b\)/,
    );
    const d2 = imageRoot();
    for (const cls of ['a', 'b'])
      for (const f of ['1', '2']) writePng(join(d2, 'test', cls, `${f}.png`), 5, 3, 0);
    assert.throws(
      () => buildData({ ...base, dataset: 'image-folder', dir: d2 }, 1),
      /test images are 5x3, train images 4x3/,
    );
  });

  it('csv: loaders over [1, 1, F] rows, normalised per feature; augmentation refused', () => {
    const dir = fresh();
    const rows = Array.from({ length: 20 }, (_, i) => `${i},${i % 3},5`).join('\n');
    writeFileSync(join(dir, 'train.csv'), `f,y,const\n${rows}\n`);
    writeFileSync(join(dir, 'test.csv'), 'const,y,f\n5,2,1\n');
    const cfg: DataConfig = { ...base, dataset: 'csv', dir, labelColumn: 'y' };
    const data = buildData(cfg, 1);
    assert.deepEqual(data.shape, [1, 1, 2]);
    assert.equal(data.numClasses, 3);
    assert.equal(data.std[1], 1, 'a constant feature is left unscaled');
    const batch = data.train.epoch().next().value!;
    assert.equal(batch.x.length, 4 * 2);
    // test.csv lists its columns in another order; the feature 'f' = 1 is still feature 0.
    const t = data.test.epoch().next().value!;
    assert.ok(Math.abs(t.x[0]! - (1 - data.mean[0]!) / data.std[0]!) < 1e-5);
    assert.equal(t.x[1], 0);
    assert.equal(JSON.parse(data.key).label, 'y');
    assert.throws(() => buildData({ ...cfg, hflip: true }, 1), /cropPadding and hflip apply to images/);
    assert.throws(() => buildData({ ...cfg, cropPadding: 4 }, 1), /a csv dataset has neither/);
    assert.throws(
      () => buildData({ ...cfg, labelColumn: 'label' }, 1),
      /train\.csv: no label column 'label'/,
    );
  });

  it('the key names the dataset and the absolute folder', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'train.csv'), 'a,label\n1,0\n2,1\n3,0\n4,1\n');
    writeFileSync(join(dir, 'test.csv'), 'a,label\n1,0\n');
    const rel = relative(process.cwd(), dir);
    const key = JSON.parse(buildData({ ...base, dataset: 'csv', dir: rel }, 1).key);
    assert.equal(key.d, 'csv');
    assert.equal(key.dir, dir);
  });

  it('readers without a default location need data.dir', () => {
    for (const dataset of ['cifar10', 'cifar100', 'image-folder', 'csv'] as const)
      assert.throws(
        () => buildData({ ...base, dataset }, 1),
        new RegExp(`data\\.dir: the ${dataset} dataset has no default location`),
      );
  });

  // The set-up installs Debian's dataset-fashion-mnist, so its absence is a failure, not a skip.
  it('fashion-mnist keeps its default folder and key', () => {
    assert.ok(existsSync('/usr/share/datasets/fashion-mnist'), 'dataset-fashion-mnist is installed');
    const data = buildData({ ...base, dataset: 'fashion-mnist', trainLimit: 50, testLimit: 20 }, 1);
    assert.deepEqual(data.shape, [28, 28, 1]);
    assert.equal(data.numClasses, 10);
    assert.equal(data.test.size, 20);
    const key = JSON.parse(data.key) as Record<string, unknown>;
    assert.match(String(key['content']), /^[0-9a-f]{32}$/);
    delete key['content'];
    assert.deepEqual(key, {
      d: 'fashion-mnist',
      dir: '/usr/share/datasets/fashion-mnist',
      n: 50,
      val: 0,
      seed: 0,
    });
  });

  it('normalize: fixed mean/std replace the split statistics (one value for all channels), enter the key', async () => {
    const cfg = { ...base, dataset: 'fashion-mnist', trainLimit: 8, testLimit: 4 } as const;
    const own = buildData(cfg, 1);
    const fixed = buildData({ ...cfg, normalize: { mean: [0.5], std: [0.25] } }, 1);
    assert.deepEqual(fixed.mean, [0.5]);
    assert.deepEqual(fixed.std, [0.25]);
    assert.notDeepEqual(own.mean, [0.5]);
    assert.notEqual(fixed.key, own.key, 'cached teacher outputs of other inputs are not reused');
    const batch = [...fixed.test.epoch()][0]!;
    const raw = [...buildData({ ...cfg, normalize: { mean: [0], std: [1] } }, 1).test.epoch()][0]!;
    for (let i = 0; i < 50; i++) assert.ok(Math.abs(batch.x[i]! - (raw.x[i]! - 0.5) / 0.25) < 1e-5);
    const rgb = buildData(
      {
        ...base,
        dataset: 'image-folder',
        dir: imageRoot(),
        normalize: { mean: [0.485, 0.456, 0.406], std: [0.5] },
      },
      1,
    );
    assert.deepEqual(rgb.std, [0.5, 0.5, 0.5]);
    assert.throws(
      () => buildData({ ...cfg, normalize: { mean: [0.1, 0.2, 0.3], std: [1] } }, 1),
      /data\.normalize\.mean: 3 values for images of 1 channel \(give 1\)/,
    );
    assert.throws(() => parseOrThrow(dataSchema, { normalize: { mean: [0.5], std: [0] } }, 'x.yaml'), /std/);
    assert.throws(() => parseOrThrow(dataSchema, { normalize: { mean: [0.5] } }, 'x.yaml'), /std/);
  });

  it('the key covers the bytes: an IDX file edited in place (same size and mtime) changes it', () => {
    const dir = fresh();
    writeMnist(dir, [6, 2, 2], [3, 2, 2], 10);
    const k1 = buildData({ ...base, dataset: 'mnist', dir }, 1).key;
    const img = join(dir, 'train-images-idx3-ubyte');
    const st = statSync(img);
    const bytes = readFileSync(img);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    writeFileSync(img, bytes);
    utimesSync(img, st.atime, st.mtime);
    assert.equal(statSync(img).size, st.size);
    assert.notEqual(buildData({ ...base, dataset: 'mnist', dir }, 1).key, k1);
  });
});

/** An IDX dataset folder: images of `train`/`test` dims, labels cycling over `classes`. */
function writeMnist(dir: string, train: number[], test: number[], classes: number): void {
  const idx = (dims: number[], data: Uint8Array) => {
    const h = Buffer.alloc(4 + 4 * dims.length);
    h[2] = 0x08;
    h[3] = dims.length;
    for (const [i, d] of dims.entries()) h.writeUInt32BE(d, 4 + 4 * i);
    return Buffer.concat([h, data]);
  };
  for (const [split, dims] of [
    ['train', train],
    ['t10k', test],
  ] as const) {
    const n = dims[0]!;
    const px = dims.reduce((a, b) => a * b, 1);
    writeFileSync(
      join(dir, `${split}-images-idx3-ubyte`),
      idx(
        dims,
        Uint8Array.from({ length: px }, (_, i) => (i * 7) % 256),
      ),
    );
    writeFileSync(
      join(dir, `${split}-labels-idx1-ubyte`),
      idx(
        [n],
        Uint8Array.from({ length: n }, (_, i) => i % classes),
      ),
    );
  }
}

describe('buildData refuses data it cannot train on, with counts and the first offender', () => {
  it('a test split of another image size (14x56 beside 28x28)', () => {
    const dir = fresh();
    writeMnist(dir, [4, 28, 28], [2, 14, 56], 10);
    assert.throws(
      () => buildData({ ...base, dataset: 'mnist', dir }, 1),
      /t10k.*: items are 14x56x1, the training split's .* are 28x28x1/,
    );
  });

  it('one class only', () => {
    const dir = fresh();
    writeMnist(dir, [5, 2, 2], [2, 2, 2], 1);
    assert.throws(
      () => buildData({ ...base, dataset: 'mnist', dir }, 1),
      /every one of the 5 items has class 0; a classifier needs at least two classes/,
    );
  });

  it('an empty split', () => {
    const dir = fresh();
    writeMnist(dir, [4, 2, 2], [0, 2, 2], 10);
    assert.throws(() => buildData({ ...base, dataset: 'mnist', dir }, 1), /empty split \(0 images\)/);
  });

  it('a CSV value past float32 (1e39) names its line and column, and counts the others', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'train.csv'), 'a,b,label\n1,2,0\n1e39,3,1\n4,-1e40,0\nx,5,1\n');
    writeFileSync(join(dir, 'test.csv'), 'a,b,label\n1,2,0\n');
    assert.throws(
      () => buildData({ ...base, dataset: 'csv', dir }, 1),
      /train\.csv: 3 feature value\(s\) refused; the first at line 3, column 'a': '1e39' is outside the float32 range/,
    );
  });
});

describe('config: the data section', () => {
  it('dir is required for cifar10, cifar100, image-folder and csv; IDX datasets default', () => {
    for (const dataset of ['cifar10', 'cifar100', 'image-folder', 'csv']) {
      const r = dataSchema.safeParse({ dataset });
      assert.equal(r.success, false, dataset);
      assert.deepEqual(r.error?.issues[0]?.path, ['dir']);
    }
    assert.equal(dataSchema.parse({ dataset: 'mnist' }).dir, undefined);
    assert.equal(dataSchema.parse({ dataset: 'cifar10', dir: '/x' }).dir, '/x');
    assert.throws(
      () =>
        parseOrThrow(
          experimentSchema,
          { name: 'e', model: { name: 'm' }, data: { dataset: 'csv' } },
          'e.yaml',
        ),
      /e\.yaml: data\.dir: required for dataset 'csv' \(there is no default location\)/,
    );
  });

  it("one reader's options are refused for another; unknown keys still fail", () => {
    assert.throws(
      () => parseOrThrow(dataSchema, { dataset: 'csv', dir: '/x', channels: 1 }, 'e.yaml'),
      /channels: applies to dataset 'image-folder' only, not 'csv'/,
    );
    assert.throws(
      () => parseOrThrow(dataSchema, { resize: [32, 32] }, 'e.yaml'),
      /resize: applies to dataset 'image-folder' only, not 'fashion-mnist'/,
    );
    assert.throws(
      () => parseOrThrow(dataSchema, { dataset: 'cifar10', dir: '/x', labelColumn: 'y' }, 'e.yaml'),
      /labelColumn: applies to dataset 'csv' only, not 'cifar10'/,
    );
    assert.throws(
      () => parseOrThrow(dataSchema, { dataset: 'image-folder', dir: '/x', channel: 1 }, 'e.yaml'),
      /unknown key 'channel' at \(top level\) \(valid keys: dataset, dir, channels, resize, stream, labelColumn/,
    );
    assert.equal(dataSchema.parse({ dataset: 'image-folder', dir: '/x', channels: 1 }).channels, 1);
  });
});
