/**
 * Image folders, as torchvision's ImageFolder: `<root>/<split>/<class>/<image>`, one folder per
 * class, classes sorted by name -> label indices. PNG is decoded with pngjs, JPEG with jpeg-js (both
 * pure JS); grayscale, palette and 16-bit PNGs arrive as 8-bit RGBA. All images of a split must have
 * one size. Output has `channels` channels, converted as PIL's `convert()` does (torchvision's
 * loader): 3 keeps R, G, B and drops alpha; 1 is Pillow's integer ITU-R 601-2 luma.
 */

import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { messageOf, RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import type { ImageDataset } from './dataset.js';

const EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Limits of one image file: its bytes, each side, and its pixels (the decoded RGBA is 4x that). */
export const IMAGE_LIMITS = { maxBytes: 64 * 1024 ** 2, maxSide: 16384, maxPixels: 2 ** 24 } as const;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Bit depths allowed per PNG colour type (PNG spec, table 11.1). */
const PNG_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

/**
 * The PNG's IHDR, checked before pngjs sees the file: pngjs sizes its inflate buffers from the
 * declared width and height, and a 74-byte file claiming 2^31 pixels aborted the process.
 */
function checkPngHeader(buf: Buffer, path: string): void {
  const bad = (why: string) => new RetortError(`${path}: not a valid PNG (${why})`, { file: path });
  if (buf.length < 33 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw bad('no PNG signature');
  if (buf.readUInt32BE(8) !== 13 || buf.toString('latin1', 12, 16) !== 'IHDR')
    throw bad('IHDR is not the first chunk');
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  const [depth, colour, compression, filter, interlace] = [buf[24]!, buf[25]!, buf[26]!, buf[27]!, buf[28]!];
  if (width === 0 || height === 0) throw bad(`size ${width}x${height}`);
  if (
    width > IMAGE_LIMITS.maxSide ||
    height > IMAGE_LIMITS.maxSide ||
    width * height > IMAGE_LIMITS.maxPixels
  )
    throw new RetortError(
      `${path}: ${width}x${height} pixels, over the image limits (${IMAGE_LIMITS.maxSide} per side, ${IMAGE_LIMITS.maxPixels} in all)`,
      { file: path },
    );
  if (!PNG_DEPTHS[colour]?.includes(depth)) throw bad(`colour type ${colour} with bit depth ${depth}`);
  if (compression !== 0 || filter !== 0 || interlace > 1)
    throw bad('unknown compression, filter or interlace method');
}

/** Decodes a PNG or JPEG file to RGBA bytes, [height, width, 4]; every failure is a RetortError. */
export function decodeImage(path: string): { width: number; height: number; rgba: Uint8Array } {
  const buf = readFileBounded(path, IMAGE_LIMITS.maxBytes, 'image');
  const ext = extname(path).toLowerCase();
  if (ext === '.png') checkPngHeader(buf, path);
  let out: { width: number; height: number; rgba: Uint8Array };
  try {
    if (ext === '.png') {
      const png = PNG.sync.read(buf);
      out = {
        width: png.width,
        height: png.height,
        rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
      };
    } else {
      // jpeg-js's own limits, checked against the frame header before it allocates.
      const img = jpeg.decode(buf, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: IMAGE_LIMITS.maxPixels / 1e6,
        maxMemoryUsageInMB: 512,
      });
      out = { width: img.width, height: img.height, rgba: img.data };
    }
  } catch (e) {
    throw new RetortError(`${path}: cannot decode as ${ext === '.png' ? 'PNG' : 'JPEG'} (${messageOf(e)})`, {
      file: path,
      cause: e,
    });
  }
  if (out.width === 0 || out.height === 0 || out.rgba.length !== out.width * out.height * 4)
    throw new RetortError(`${path}: decoded to ${out.width}x${out.height} with ${out.rgba.length} bytes`, {
      file: path,
    });
  return out;
}

/** Pillow's RGB -> L (Convert.c, L24 >> 16): 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

interface FileEntry {
  path: string;
  label: number;
}

/** The image files of one split, ordered round-robin over classes (see loadImageFolder). */
function listSplit(root: string, split: 'train' | 'test'): { classes: string[]; files: FileEntry[] } {
  const dir = join(root, split);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new RetortError(
      `image folder: ${dir} not found; expected ${root}/train/<class>/<image> and ${root}/test/<class>/<image>`,
    );
  // Hidden folders (.ipynb_checkpoints, .git) are not classes.
  const classes = readdirSync(dir)
    .filter((d) => !d.startsWith('.') && statSync(join(dir, d)).isDirectory())
    .sort();
  if (classes.length === 0)
    throw new RetortError(`image folder: ${dir} has no class folders; expected ${dir}/<class>/<image>`);
  const perClass = classes.map((cls, label) => {
    const names = readdirSync(join(dir, cls))
      .filter((f) => EXTENSIONS.has(extname(f).toLowerCase()))
      .sort();
    if (names.length === 0)
      throw new RetortError(`image folder: class folder ${join(dir, cls)} has no .png/.jpg/.jpeg images`);
    return names.map((f) => ({ path: join(dir, cls, f), label }));
  });
  const files: FileEntry[] = [];
  const longest = Math.max(...perClass.map((p) => p.length));
  for (let k = 0; k < longest; k++) for (const p of perClass) if (k < p.length) files.push(p[k]!);
  return { classes, files };
}

/**
 * Reads `<root>/<split>` as a labelled dataset, images [N, H, W, channels] uint8. Files are ordered
 * round-robin over the classes (first file of each class, then the second, ...), so the first
 * `limit` images (quick runs) cover every class; only those are decoded.
 */
export function loadImageFolder(
  root: string,
  split: 'train' | 'test',
  channels: 1 | 3,
  limit?: number,
): ImageDataset {
  const { classes, files: all } = listSplit(root, split);
  const files = limit === undefined ? all : all.slice(0, limit);
  let height = 0;
  let width = 0;
  let first = '';
  let images = new Uint8Array(0);
  const labels = new Int32Array(files.length);
  for (const [i, f] of files.entries()) {
    const img = decodeImage(f.path);
    if (i === 0) {
      height = img.height;
      width = img.width;
      first = f.path;
      images = new Uint8Array(files.length * height * width * channels);
    } else if (img.height !== height || img.width !== width) {
      throw new RetortError(
        `image folder: ${f.path} is ${img.width}x${img.height}, but ${first} is ${width}x${height}; all images must have one size`,
      );
    }
    const base = i * height * width * channels;
    const { rgba } = img;
    for (let p = 0; p < height * width; p++) {
      const r = rgba[p * 4]!;
      const g = rgba[p * 4 + 1]!;
      const b = rgba[p * 4 + 2]!;
      if (channels === 1) images[base + p] = luma(r, g, b);
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
