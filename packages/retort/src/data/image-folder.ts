/**
 * Image folders, as torchvision's ImageFolder: `<root>/<split>/<class>/<image>`, one folder per
 * class, classes sorted by name -> label indices. PNG is decoded with pngjs, JPEG with jpeg-js (both
 * pure JS); grayscale, palette and 16-bit PNGs arrive as 8-bit RGBA. All images of a split must have
 * one size. Output has `channels` channels, converted as PIL's `convert()` does (torchvision's
 * loader): 3 keeps R, G, B and drops alpha; 1 is Pillow's integer ITU-R 601-2 luma.
 */

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { messageOf, RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import type { ImageDataset, LazyPixels, MemoryDataset } from './dataset.js';
import { checkPng } from './png-check.js';

const EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Limits of one image file: its bytes, each side, and its pixels (the decoded RGBA is 4x that). */
export const IMAGE_LIMITS = { maxBytes: 64 * 1024 ** 2, maxSide: 16384, maxPixels: 2 ** 24 } as const;

/** Decodes a PNG or JPEG file to RGBA bytes, [height, width, 4]; every failure is a RetortError. */
export function decodeImage(path: string): { width: number; height: number; rgba: Uint8Array } {
  const buf = readFileBounded(path, IMAGE_LIMITS.maxBytes, 'image');
  const ext = extname(path).toLowerCase();
  if (ext === '.png') checkPng(buf, path, IMAGE_LIMITS);
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
        maxMemoryUsageInMB: 256,
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
 * The items of `<root>/<split>` in loadImageFolder's order (first `limit`), as `<class>/<file>`
 * relative to the split folder: what pairs two folders of one sample's modalities.
 */
export function imageFolderItems(root: string, split: 'train' | 'test', limit?: number): string[] {
  const { files } = listSplit(root, split);
  const dir = join(root, split);
  return (limit === undefined ? files : files.slice(0, limit)).map((f) => relative(dir, f.path));
}

/**
 * Resizes RGBA bytes [h, w, 4] to [H, W, 4] bilinearly with half-pixel centers (what PIL and
 * torchvision's bilinear resize do without antialiasing), rounding to the nearest byte.
 */
export function resizeRgba(rgba: Uint8Array, w: number, h: number, W: number, H: number): Uint8Array {
  if (w === W && h === H) return rgba;
  const out = new Uint8Array(W * H * 4);
  const sx = w / W;
  const sy = h / H;
  for (let y = 0; y < H; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const ty = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, w - 1);
      const tx = fx - x0;
      for (let c = 0; c < 4; c++) {
        const a = rgba[(y0 * w + x0) * 4 + c]!;
        const b = rgba[(y0 * w + x1) * 4 + c]!;
        const d = rgba[(y1 * w + x0) * 4 + c]!;
        const e = rgba[(y1 * w + x1) * 4 + c]!;
        const top = a + (b - a) * tx;
        const bottom = d + (e - d) * tx;
        out[(y * W + x) * 4 + c] = Math.round(top + (bottom - top) * ty);
      }
    }
  }
  return out;
}

/** Writes RGBA [h*w, 4] into `out` at `base` as `channels` channels (PIL's convert()). */
function fromRgba(rgba: Uint8Array, pixels: number, channels: 1 | 3, out: Uint8Array, base: number): void {
  for (let p = 0; p < pixels; p++) {
    const r = rgba[p * 4]!;
    const g = rgba[p * 4 + 1]!;
    const b = rgba[p * 4 + 2]!;
    if (channels === 1) out[base + p] = luma(r, g, b);
    else {
      out[base + p * 3] = r;
      out[base + p * 3 + 1] = g;
      out[base + p * 3 + 2] = b;
    }
  }
}

/** Decodes one file, resized when asked; its size checked against the split's. */
function decodeSized(
  path: string,
  resize: readonly [number, number] | undefined,
  want: { height: number; width: number; first: string } | null,
): { height: number; width: number; rgba: Uint8Array } {
  const decoded = decodeImage(path);
  const img = resize
    ? {
        height: resize[0],
        width: resize[1],
        rgba: resizeRgba(decoded.rgba, decoded.width, decoded.height, resize[1], resize[0]),
      }
    : decoded;
  if (want && (img.height !== want.height || img.width !== want.width))
    throw new RetortError(
      `image folder: ${path} is ${img.width}x${img.height}, but ${want.first} is ${want.width}x${want.height}; all images must have one size (or set data.resize: [H, W])`,
      { file: path },
    );
  return img;
}

export interface ImageFolderOptions {
  /** Only the first `limit` files (round-robin over classes). */
  limit?: number | undefined;
  /** Resize every image to [H, W]. */
  resize?: readonly [number, number] | undefined;
  /**
   * Decode each image when a batch takes it instead of all at once: memory stays at one batch,
   * every epoch decodes the split again.
   */
  stream?: boolean | undefined;
}

/**
 * Reads `<root>/<split>` as a labelled dataset, images [N, H, W, channels] uint8. Files are ordered
 * round-robin over the classes (first file of each class, then the second, ...), so the first
 * `limit` images (quick runs) cover every class; only those are decoded. With `resize` [H, W]
 * every image is resized to it (folders of mixed sizes); without, all must share one size. With
 * `stream` only the first image is decoded here (for the size) and the rest when they are used.
 */
export function loadImageFolder(
  root: string,
  split: 'train' | 'test',
  channels: 1 | 3,
  opts?: ImageFolderOptions & { stream?: false | undefined },
): MemoryDataset;
export function loadImageFolder(
  root: string,
  split: 'train' | 'test',
  channels: 1 | 3,
  opts: ImageFolderOptions,
): ImageDataset;
export function loadImageFolder(
  root: string,
  split: 'train' | 'test',
  channels: 1 | 3,
  opts: ImageFolderOptions = {},
): ImageDataset {
  // The options were positional (limit, resize) before 0.1.0: a number here would be ignored silently.
  if (typeof opts !== 'object' || opts === null)
    throw new RetortError(
      `loadImageFolder: options must be an object ({ limit, resize, stream }), got ${String(opts)}`,
    );
  const { classes, files: all } = listSplit(root, split);
  const files = opts.limit === undefined ? all : all.slice(0, opts.limit);
  const labels = Int32Array.from(files, (f) => f.label);
  const meta = {
    name: `${root}/${split}`,
    labels,
    count: files.length,
    channels,
    numClasses: classes.length,
    classNames: classes,
  };
  const first = decodeSized(files[0]!.path, opts.resize, null);
  const want = { height: first.height, width: first.width, first: files[0]!.path };
  const per = want.height * want.width * channels;
  if (opts.stream) {
    const images: LazyPixels = {
      kind: 'lazy',
      read(i) {
        const f = files[i];
        if (f === undefined) throw new RetortError(`image folder ${root}/${split}: no item ${i}`);
        const out = new Uint8Array(per);
        fromRgba(decodeSized(f.path, opts.resize, want).rgba, want.height * want.width, channels, out, 0);
        return out;
      },
      // The files' bytes, not their names or times: an image edited in place is new data.
      digest() {
        const h = createHash('sha256').update(JSON.stringify({ channels, resize: opts.resize ?? null }));
        for (const f of files)
          h.update(relative(root, f.path)).update(readFileBounded(f.path, IMAGE_LIMITS.maxBytes, 'image'));
        return h.digest('hex');
      },
    };
    return { ...meta, images, height: want.height, width: want.width };
  }
  const images = new Uint8Array(files.length * per);
  for (const [i, f] of files.entries()) {
    const img = i === 0 ? first : decodeSized(f.path, opts.resize, want);
    fromRgba(img.rgba, want.height * want.width, channels, images, i * per);
  }
  return { ...meta, images, height: want.height, width: want.width };
}
