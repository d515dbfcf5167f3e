/**
 * Image folders, as torchvision's ImageFolder: `<root>/<split>/<class>/<image>`, one folder per
 * class, classes sorted by name -> label indices. PNG is decoded with pngjs, JPEG with jpeg-js (both
 * pure JS). All images of a dataset must have one size; they are converted to the requested number
 * of channels (1: luma 0.299 R + 0.587 G + 0.114 B, as PIL's "L"; 3: RGB, alpha dropped).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import type { ImageDataset } from './dataset.js';

const EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Decodes a PNG or JPEG file to RGBA bytes. */
export function decodeImage(path: string): { width: number; height: number; rgba: Uint8Array } {
  const buf = readFileSync(path);
  const ext = extname(path).toLowerCase();
  try {
    if (ext === '.png') {
      const png = PNG.sync.read(buf);
      return {
        width: png.width,
        height: png.height,
        rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
      };
    }
    const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: true });
    return { width: img.width, height: img.height, rgba: img.data };
  } catch (e) {
    throw new Error(`${path}: cannot decode as ${ext === '.png' ? 'PNG' : 'JPEG'} (${(e as Error).message})`);
  }
}

/** Reads `<root>/<split>` as a labelled image dataset with `channels` (1 or 3) channels. */
export function loadImageFolder(root: string, split: 'train' | 'test', channels: 1 | 3): ImageDataset {
  const dir = join(root, split);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new Error(
      `image folder: ${dir} not found; expected ${root}/train/<class>/<image> and ${root}/test/<class>/<image>`,
    );
  const classes = readdirSync(dir)
    .filter((d) => statSync(join(dir, d)).isDirectory())
    .sort();
  if (classes.length === 0) throw new Error(`image folder: ${dir} has no class folders`);
  const files: { path: string; label: number }[] = [];
  for (const [label, cls] of classes.entries()) {
    const names = readdirSync(join(dir, cls))
      .filter((f) => EXTENSIONS.has(extname(f).toLowerCase()))
      .sort();
    if (names.length === 0)
      throw new Error(`image folder: class folder ${join(dir, cls)} has no .png/.jpg/.jpeg images`);
    for (const f of names) files.push({ path: join(dir, cls, f), label });
  }
  let height = 0;
  let width = 0;
  let first = '';
  let images = new Uint8Array(0);
  const labels = new Uint8Array(files.length);
  for (const [i, f] of files.entries()) {
    const img = decodeImage(f.path);
    if (i === 0) {
      height = img.height;
      width = img.width;
      first = f.path;
      images = new Uint8Array(files.length * height * width * channels);
    } else if (img.height !== height || img.width !== width) {
      throw new Error(
        `image folder: ${f.path} is ${img.width}x${img.height}, but ${first} is ${width}x${height}; all images must have one size`,
      );
    }
    const base = i * height * width * channels;
    for (let p = 0; p < height * width; p++) {
      const r = img.rgba[p * 4]!;
      const g = img.rgba[p * 4 + 1]!;
      const b = img.rgba[p * 4 + 2]!;
      if (channels === 1) images[base + p] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      else {
        images[base + p * 3] = r;
        images[base + p * 3 + 1] = g;
        images[base + p * 3 + 2] = b;
      }
    }
    labels[i] = f.label;
  }
  return {
    name: `${root}/${split}`,
    images,
    labels,
    count: files.length,
    height,
    width,
    channels,
    numClasses: classes.length,
    classNames: classes,
  };
}
