/**
 * CIFAR binary, image-folder and CSV readers on small synthetic files, and buildData's dispatch:
 * exact pixel layouts and labels, and one clear error per kind of bad input.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { buildData } from '../../src/data/build.js';
import { loadCifar, parseCifarBatch } from '../../src/data/cifar.js';
import { loadCsv, splitCsvLine } from '../../src/data/csv.js';
import { loadImageFolder } from '../../src/data/image-folder.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-readers-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(scratch, `d${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

/** One CIFAR record with labels `labels` and pixel value (c * 1024 + p) % 251 for plane c. */
function record(labels: number[]): Uint8Array {
  const r = new Uint8Array(labels.length + 3072);
  r.set(labels, 0);
  for (let c = 0; c < 3; c++)
    for (let p = 0; p < 1024; p++) r[labels.length + c * 1024 + p] = (c * 1024 + p + labels[0]!) % 251;
  return r;
}
const concat = (rs: Uint8Array[]) => {
  const out = new Uint8Array(rs.reduce((a, r) => a + r.length, 0));
  let at = 0;
  for (const r of rs) {
    out.set(r, at);
    at += r.length;
  }
  return out;
};

describe('CIFAR binary batches', () => {
  it('CIFAR-10: planar CHW becomes interleaved HWC, labels kept', () => {
    const d = parseCifarBatch(concat([record([3]), record([7])]), 'cifar10', 'x.bin');
    assert.equal(d.count, 2);
    assert.deepEqual(Array.from(d.labels), [3, 7]);
    // image 1, pixel p = row 2 col 5 -> p = 69; channel c at HWC offset p * 3 + c.
    for (let c = 0; c < 3; c++) assert.equal(d.images[3072 + 69 * 3 + c], (c * 1024 + 69 + 7) % 251);
  });

  it('CIFAR-100 uses the fine label (second byte), 100 classes; reads train.bin/test.bin', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'train.bin'), concat([record([1, 42]), record([2, 99])]));
    writeFileSync(join(dir, 'test.bin'), record([0, 5]));
    const train = loadCifar(dir, 'cifar100', 'train');
    assert.deepEqual(Array.from(train.labels), [42, 99]);
    assert.equal(train.numClasses, 100);
    assert.equal(loadCifar(dir, 'cifar100', 'test').count, 1);
  });

  it('errors: truncated file, label out of range, missing batch file', () => {
    assert.throws(
      () => parseCifarBatch(record([1]).subarray(0, 3000), 'cifar10', '/d/data_batch_1.bin'),
      /\/d\/data_batch_1\.bin: 3000 bytes is not a whole number of cifar10 records of 3073 bytes/,
    );
    assert.throws(
      () => parseCifarBatch(concat([record([1]), record([12])]), 'cifar10', 'b.bin'),
      /b\.bin: record 1 has label 12, out of range 0\.\.9/,
    );
    const dir = fresh();
    assert.throws(
      () => loadCifar(dir, 'cifar10', 'train'),
      /data_batch_1\.bin not found; point data\.dir at the extracted 'cifar-10-batches-bin' folder/,
    );
  });
});

function writePng(
  path: string,
  w: number,
  h: number,
  rgba: (x: number, y: number) => [number, number, number, number],
) {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) png.data.set(rgba(x, y), (y * w + x) * 4);
  writeFileSync(path, PNG.sync.write(png));
}

describe('image folders', () => {
  const root = fresh();
  for (const split of ['train', 'test']) {
    for (const cls of ['cat', 'ant']) mkdirSync(join(root, split, cls), { recursive: true });
    writePng(join(root, split, 'ant', 'a.png'), 3, 2, (x, y) => [10 * x, 20 * y, 30, 255]);
    writePng(join(root, split, 'cat', 'b.png'), 3, 2, () => [200, 100, 50, 128]);
    const data = Buffer.alloc(3 * 2 * 4, 0);
    for (let i = 0; i < 6; i++) data.set([90, 90, 90, 255], i * 4);
    writeFileSync(join(root, split, 'cat', 'c.jpg'), jpeg.encode({ data, width: 3, height: 2 }, 100).data);
  }

  it('sorted class folders give labels; PNG pixels exact in RGB; JPEG decoded; grayscale by luma', () => {
    const d = loadImageFolder(root, 'train', 3);
    assert.deepEqual(d.classNames, ['ant', 'cat']);
    assert.equal(d.count, 3);
    assert.deepEqual(Array.from(d.labels), [0, 1, 1]);
    assert.deepEqual([d.height, d.width, d.channels], [2, 3, 3]);
    // ant/a.png at (x 2, y 1): [20, 20, 30]
    assert.deepEqual(Array.from(d.images.subarray((1 * 3 + 2) * 3, (1 * 3 + 2) * 3 + 3)), [20, 20, 30]);
    const jpgPixel = Array.from(d.images.subarray(2 * 18, 2 * 18 + 3));
    assert.ok(
      jpgPixel.every((v) => Math.abs(v - 90) <= 2),
      `JPEG gray decoded: ${jpgPixel}`,
    );
    const g = loadImageFolder(root, 'train', 1);
    assert.equal(g.images[6 + 0], Math.round(0.299 * 200 + 0.587 * 100 + 0.114 * 50));
  });

  it('errors: missing split folder, empty class folder, mixed sizes, undecodable file', () => {
    assert.throws(
      () => loadImageFolder(fresh(), 'train', 3),
      /train not found; expected .*\/train\/<class>\/<image>/,
    );
    const r2 = fresh();
    mkdirSync(join(r2, 'train', 'empty'), { recursive: true });
    assert.throws(
      () => loadImageFolder(r2, 'train', 3),
      /class folder .*empty has no \.png\/\.jpg\/\.jpeg images/,
    );
    const r3 = fresh();
    mkdirSync(join(r3, 'train', 'a'), { recursive: true });
    writePng(join(r3, 'train', 'a', '1.png'), 3, 2, () => [0, 0, 0, 255]);
    writePng(join(r3, 'train', 'a', '2.png'), 4, 2, () => [0, 0, 0, 255]);
    assert.throws(() => loadImageFolder(r3, 'train', 3), /2\.png is 4x2, but .*1\.png is 3x2/);
    writeFileSync(join(r3, 'train', 'a', '2.png'), 'not a png');
    assert.throws(() => loadImageFolder(r3, 'train', 3), /2\.png: cannot decode as PNG/);
  });
});

describe('CSV', () => {
  it('splits quoted fields', () => {
    assert.deepEqual(splitCsvLine('a,"b,c","""d"""'), ['a', 'b,c', '"d"']);
  });

  it('numeric features as [1, 1, F] rows; string labels mapped to sorted names; test uses train classes', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'train.csv'), 'x1,species,x2\n1.5,setosa,2\n-3,virginica,4e-1\n0,setosa,7\n');
    writeFileSync(join(dir, 'test.csv'), 'x1,species,x2\n9,virginica,1\n');
    const d = loadCsv(join(dir, 'train.csv'), { labelColumn: 'species' });
    assert.deepEqual([d.height, d.width, d.channels, d.count], [1, 1, 2, 3]);
    assert.deepEqual(Array.from(d.images), [1.5, 2, -3, 0.4000000059604645, 0, 7]);
    assert.deepEqual(d.classNames, ['setosa', 'virginica']);
    assert.deepEqual(Array.from(d.labels), [0, 1, 0]);
    const t = loadCsv(join(dir, 'test.csv'), { labelColumn: 'species', classNames: d.classNames });
    assert.deepEqual(Array.from(t.labels), [1]);
  });

  it('errors name the file, line and column', () => {
    const dir = fresh();
    const p = join(dir, 'bad.csv');
    writeFileSync(p, 'a,label\n1,0\n2\n');
    assert.throws(
      () => loadCsv(p, { labelColumn: 'label' }),
      /bad\.csv: line 3 has 1 fields, the header has 2/,
    );
    writeFileSync(p, 'a,label\n1,0\nx,1\n');
    assert.throws(
      () => loadCsv(p, { labelColumn: 'label' }),
      /bad\.csv: line 3, column 'a': 'x' is not a finite number/,
    );
    assert.throws(
      () => loadCsv(p, { labelColumn: 'target' }),
      /no label column 'target' \(columns: a, label\)/,
    );
    writeFileSync(p, 'a,label\n1,zebra\n');
    assert.throws(
      () => loadCsv(p, { labelColumn: 'label', classNames: ['cat'] }),
      /line 2: label 'zebra' is not one of the training classes/,
    );
  });
});

describe('buildData dispatch', () => {
  it('csv: loaders over [1, 1, F] rows, normalised per feature; augmentation refused', () => {
    const dir = fresh();
    const rows = Array.from({ length: 20 }, (_, i) => `${i},${i % 3},${5}`).join('\n');
    writeFileSync(join(dir, 'train.csv'), `f,label,const\n${rows}\n`);
    writeFileSync(join(dir, 'test.csv'), 'f,label,const\n1,2,5\n');
    const base = { dataset: 'csv' as const, dir, batchSize: 8, valFraction: 0, cropPadding: 0, hflip: false };
    const data = buildData(base, 1);
    assert.deepEqual(data.shape, [1, 1, 2]);
    assert.equal(data.numClasses, 3);
    assert.equal(data.std[1], 1, 'a constant feature is left unscaled');
    const batch = data.train.epoch().next().value!;
    assert.equal(batch.x.length, 8 * 2);
    assert.throws(() => buildData({ ...base, hflip: true }, 1), /cropPadding and hflip apply to images/);
  });

  it('cifar and image-folder need data.dir; IDX datasets keep their default', () => {
    assert.throws(
      () => buildData({ dataset: 'cifar10', batchSize: 8, valFraction: 0, cropPadding: 0, hflip: false }, 1),
      /data\.dir: the cifar10 dataset has no default location/,
    );
  });
});
