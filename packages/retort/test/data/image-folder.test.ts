/**
 * Image folders on fixture PNGs (pngjs) and JPEGs (jpeg-js) written here: class order, file order,
 * exact pixels per channel count, and one clear error per kind of bad input.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import jpeg from 'jpeg-js';
import { PNG, type PNGOptions } from 'pngjs';
import { parseOrThrow } from '../../src/config/errors.js';
import { dataSchema } from '../../src/config/experiment.js';
import { buildData } from '../../src/data/build.js';
import { isLazy, itemPixels } from '../../src/data/dataset.js';
import { loadImageFolder, luma } from '../../src/data/image-folder.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-imgfolder-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const fresh = () => mkdtempSync(join(scratch, 'd-'));

type Rgba = [number, number, number, number];

/** Writes a w x h PNG; `opts` picks the stored colour type (6 RGBA by default, 0 grayscale, 2 RGB). */
function writePng(
  path: string,
  w: number,
  h: number,
  rgba: (x: number, y: number) => Rgba,
  opts?: PNGOptions,
) {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) png.data.set(rgba(x, y), (y * w + x) * 4);
  writeFileSync(path, PNG.sync.write(png, opts));
}

function writeJpeg(path: string, w: number, h: number, rgba: Rgba) {
  const data = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set(rgba, i * 4);
  writeFileSync(path, jpeg.encode({ data, width: w, height: h }, 100).data);
}

/** Pixel (x, y) of image i in an [N, H, W, C] dataset. */
function px(
  d: { images: ArrayLike<number>; height: number; width: number; channels: number },
  i: number,
  x: number,
  y: number,
) {
  const o = ((i * d.height + y) * d.width + x) * d.channels;
  return Array.from({ length: d.channels }, (_, c) => d.images[o + c]!);
}

// root/{train,test}/{ant,cat}: ant has an RGBA PNG and a grayscale PNG, cat an RGB PNG, a JPEG and
// a PNG with alpha 0. A hidden folder and a text file are not data.
const root = fresh();
for (const split of ['train', 'test']) {
  for (const cls of ['cat', 'ant', '.ipynb_checkpoints'])
    mkdirSync(join(root, split, cls), { recursive: true });
  writePng(join(root, split, 'ant', 'a.png'), 3, 2, (x, y) => [10 * x, 20 * y, 30, 255]);
  writePng(join(root, split, 'ant', 'b.png'), 3, 2, (x) => [40 * x, 40 * x, 40 * x, 255], { colorType: 0 });
  writePng(join(root, split, 'cat', 'a.png'), 3, 2, () => [200, 100, 50, 255], { colorType: 2 });
  writeJpeg(join(root, split, 'cat', 'b.jpg'), 3, 2, [90, 90, 90, 255]);
  writePng(join(root, split, 'cat', 'c.PNG'), 3, 2, () => [7, 8, 9, 0]);
  writeFileSync(join(root, split, 'cat', 'notes.txt'), 'not an image');
  writePng(join(root, split, '.ipynb_checkpoints', 'x.png'), 3, 2, () => [0, 0, 0, 255]);
}

describe('image folders', () => {
  it('sorted class folders give labels; files round-robin over classes; RGB pixels exact', () => {
    const d = loadImageFolder(root, 'train', 3);
    assert.deepEqual(d.classNames, ['ant', 'cat']);
    assert.equal(d.numClasses, 2);
    assert.deepEqual([d.count, d.height, d.width, d.channels], [5, 2, 3, 3]);
    // ant/a, cat/a, ant/b, cat/b, cat/c
    assert.deepEqual(Array.from(d.labels), [0, 1, 0, 1, 1]);
    assert.deepEqual(px(d, 0, 2, 1), [20, 20, 30]);
    assert.deepEqual(px(d, 0, 0, 0), [0, 0, 30]);
    assert.deepEqual(px(d, 1, 1, 1), [200, 100, 50], 'RGB PNG');
    assert.deepEqual(px(d, 2, 2, 0), [80, 80, 80], 'grayscale PNG replicated to three channels');
    const j = px(d, 3, 1, 1);
    assert.ok(
      j.every((v) => Math.abs(v - 90) <= 2),
      `JPEG decoded near its colour: ${j}`,
    );
    assert.deepEqual(px(d, 4, 0, 0), [7, 8, 9], 'alpha dropped, colour kept (PIL convert("RGB"))');
    assert.equal(loadImageFolder(root, 'test', 3).count, 5);
  });

  it('one channel: Pillow luma of RGB, gray values unchanged', () => {
    assert.equal(luma(200, 100, 50), 124);
    assert.equal(luma(10, 20, 30), 18);
    assert.equal(luma(255, 255, 255), 255);
    for (let v = 0; v < 256; v++) assert.equal(luma(v, v, v), v);
    const g = loadImageFolder(root, 'train', 1);
    assert.equal(g.channels, 1);
    assert.deepEqual(px(g, 1, 0, 0), [124]);
    assert.deepEqual(px(g, 0, 1, 1), [18]);
    assert.deepEqual(px(g, 2, 2, 1), [80]);
  });

  it('a limit keeps the first images round-robin, so every class is present', () => {
    const d = loadImageFolder(root, 'train', 3, { limit: 2 });
    assert.equal(d.count, 2);
    assert.deepEqual(Array.from(d.labels), [0, 1]);
    assert.equal(d.images.length, 2 * 2 * 3 * 3);
    assert.equal(d.numClasses, 2);
  });

  it('more than 256 classes keep their label indices', () => {
    const r = fresh();
    for (let k = 0; k < 260; k++) {
      const cls = join(r, 'train', `c${String(k).padStart(3, '0')}`);
      mkdirSync(cls, { recursive: true });
      writePng(join(cls, 'x.png'), 1, 1, () => [k % 256, 0, 0, 255]);
    }
    const d = loadImageFolder(r, 'train', 3);
    assert.equal(d.numClasses, 260);
    assert.equal(d.labels[259], 259);
  });
});

describe('image folder errors', () => {
  it('missing split folder: says the layout expected', () => {
    assert.throws(
      () => loadImageFolder(fresh(), 'test', 3),
      /test not found; expected .*\/train\/<class>\/<image> and .*\/test\/<class>\/<image>/,
    );
  });

  it('no class folders, or an empty class folder: names the folder', () => {
    const r = fresh();
    mkdirSync(join(r, 'train'), { recursive: true });
    writePng(join(r, 'train', 'loose.png'), 1, 1, () => [0, 0, 0, 255]);
    assert.throws(
      () => loadImageFolder(r, 'train', 3),
      /train has no class folders; expected .*\/<class>\/<image>/,
    );
    mkdirSync(join(r, 'train', 'empty'));
    writeFileSync(join(r, 'train', 'empty', 'readme.txt'), 'x');
    assert.throws(
      () => loadImageFolder(r, 'train', 3),
      /class folder .*empty has no \.png\/\.jpg\/\.jpeg images/,
    );
  });

  it('mixed sizes: names the mismatching file and both sizes', () => {
    const r = fresh();
    mkdirSync(join(r, 'train', 'a'), { recursive: true });
    writePng(join(r, 'train', 'a', '1.png'), 3, 2, () => [0, 0, 0, 255]);
    writePng(join(r, 'train', 'a', '2.png'), 4, 2, () => [0, 0, 0, 255]);
    assert.throws(
      () => loadImageFolder(r, 'train', 3),
      /a\/2\.png is 4x2, but .*a\/1\.png is 3x2.*set data\.resize/,
    );
  });

  it('resize: folders of mixed sizes load at one size; bilinear with half-pixel centers', () => {
    const r = fresh();
    mkdirSync(join(r, 'train', 'a'), { recursive: true });
    // 2x1 (black, white) and 4x2 (a left-to-right ramp): both to 4x2.
    writePng(join(r, 'train', 'a', '1.png'), 2, 1, (x) => (x === 0 ? [0, 0, 0, 255] : [200, 200, 200, 255]));
    writePng(join(r, 'train', 'a', '2.png'), 4, 2, (x) => [60 * x, 0, 0, 255]);
    const d = loadImageFolder(r, 'train', 1, { resize: [2, 4] });
    assert.deepEqual([d.count, d.height, d.width, d.channels], [2, 2, 4, 1]);
    // Upsampling 2 -> 4 columns: source x = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped
    // to [0, 1]: weights 0, 0.25, 0.75, 1 of the white pixel.
    assert.deepEqual(Array.from(d.images.subarray(0, 4)), [0, 50, 150, 200]);
    assert.deepEqual(Array.from(d.images.subarray(4, 8)), [0, 50, 150, 200]);
    // Same size: untouched (luma of pure red 60 * x).
    assert.deepEqual(
      Array.from(d.images.subarray(8, 12)),
      [0, 1, 2, 3].map((x) => luma(60 * x, 0, 0)),
    );
  });

  it('undecodable PNG or JPEG: names the file', () => {
    const r = fresh();
    mkdirSync(join(r, 'train', 'a'), { recursive: true });
    writePng(join(r, 'train', 'a', '1.png'), 3, 2, () => [0, 0, 0, 255]);
    writeFileSync(join(r, 'train', 'a', '2.png'), 'not a png');
    assert.throws(() => loadImageFolder(r, 'train', 3), /a\/2\.png: (cannot decode as PNG|not a valid PNG)/);
    rmSync(join(r, 'train', 'a', '2.png'));
    writeFileSync(join(r, 'train', 'a', '3.jpg'), 'not a jpeg');
    assert.throws(() => loadImageFolder(r, 'train', 3), /a\/3\.jpg: cannot decode as JPEG/);
  });

  it('stream: items decoded when read, equal to the in-memory split; edits on disk are seen', () => {
    for (const channels of [1, 3] as const) {
      const mem = loadImageFolder(root, 'train', channels);
      const lazy = loadImageFolder(root, 'train', channels, { stream: true });
      assert.ok(isLazy(lazy.images), 'a streamed split holds no pixel array');
      assert.deepEqual(
        [lazy.count, lazy.height, lazy.width, lazy.channels, lazy.classNames],
        [mem.count, mem.height, mem.width, mem.channels, mem.classNames],
      );
      assert.deepEqual(Array.from(lazy.labels), Array.from(mem.labels));
      for (let i = 0; i < mem.count; i++) assert.deepEqual(itemPixels(lazy, i), itemPixels(mem, i));
    }
    // Read from disk each time: a file rewritten after loading is what the next batch gets, and one
    // rewritten at another size is refused by name when it is read.
    const r = fresh();
    mkdirSync(join(r, 'train', 'a'), { recursive: true });
    writePng(join(r, 'train', 'a', '1.png'), 2, 2, () => [10, 10, 10, 255]);
    writePng(join(r, 'train', 'a', '2.png'), 2, 2, () => [20, 20, 20, 255]);
    const d = loadImageFolder(r, 'train', 1, { stream: true });
    const digest = () => (isLazy(d.images) ? d.images.digest() : '');
    const before = digest();
    assert.deepEqual(Array.from(itemPixels(d, 1)), [20, 20, 20, 20]);
    writePng(join(r, 'train', 'a', '2.png'), 2, 2, () => [30, 30, 30, 255]);
    assert.deepEqual(Array.from(itemPixels(d, 1)), [30, 30, 30, 30]);
    assert.notEqual(digest(), before, 'the digest follows the bytes');
    writePng(join(r, 'train', 'a', '2.png'), 3, 2, () => [30, 30, 30, 255]);
    assert.throws(() => itemPixels(d, 1), /a\/2\.png is 3x2, but .*a\/1\.png is 2x2/);
  });

  it('stream: buildData gives the same batches and statistics as the in-memory folder', () => {
    const cfg = (stream: boolean) =>
      dataSchema.parse({ dataset: 'image-folder', dir: root, batchSize: 2, valFraction: 0.2, stream });
    const a = buildData(cfg(false), 3);
    const b = buildData(cfg(true), 3);
    assert.deepEqual([a.mean, a.std, a.shape], [b.mean, b.std, b.shape]);
    for (const k of ['train', 'val', 'test', 'trainPlain'] as const) {
      const xa = [...a[k].epoch()];
      const xb = [...b[k].epoch()];
      assert.deepEqual(xa, xb, k);
    }
    assert.throws(
      () => parseOrThrow(dataSchema, { dataset: 'csv', dir: '/x', stream: true }, 'e.yaml'),
      /stream: applies to dataset 'image-folder' only, not 'csv'/,
    );
  });
});
