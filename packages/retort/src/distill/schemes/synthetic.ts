/**
 * What the data-free schemes share once they have images: the synthesized set saved as a dataset
 * users can open (IDX files a `fashion-mnist`-style reader loads, and grid.png to look at), and the
 * student distilled on it with the experiment's stages, as the offline scheme would, the data
 * section's augmentation (cropPadding, hflip) applied to the synthesized images. The real test split
 * is used for evaluation only; the real training split is never read.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { PNG } from 'pngjs';
import type { Experiment } from '../../config/experiment.js';
import type { MemoryDataset } from '../../data/dataset.js';
import { BatchLoader } from '../../data/loader.js';
import { writeFileAtomic } from '../../util/atomic.js';
import { RetortError } from '../../util/errors.js';
import { trainStages } from './offline.js';
import type { SchemeContext, SchemeOutput } from './types.js';

/** An IDX file: big-endian header (0x08 = ubyte, rank), dims, then the bytes. */
export function idxBytes(data: Uint8Array, dims: readonly number[]): Uint8Array {
  const head = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  head.setUint8(2, 0x08);
  head.setUint8(3, dims.length);
  for (const [i, d] of dims.entries()) head.setUint32(4 + 4 * i, d);
  const out = new Uint8Array(head.byteLength + data.length);
  out.set(new Uint8Array(head.buffer), 0);
  out.set(data, head.byteLength);
  return out;
}

/** The first rows*cols images as one PNG grid (gray or RGB), 1-pixel gaps. */
export function gridPng(
  pixels: Uint8Array,
  count: number,
  h: number,
  w: number,
  c: number,
  cols = 10,
): Uint8Array {
  const n = Math.min(count, cols * cols);
  const rows = Math.ceil(n / cols);
  const W = cols * (w + 1) + 1;
  const H = rows * (h + 1) + 1;
  const png = new PNG({ width: W, height: H });
  png.data.fill(255);
  for (let i = 0; i < n; i++) {
    const oy = 1 + Math.floor(i / cols) * (h + 1);
    const ox = 1 + (i % cols) * (w + 1);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const o = ((oy + y) * W + ox + x) * 4;
        for (let k = 0; k < 3; k++) png.data[o + k] = pixels[((i * h + y) * w + x) * c + (c === 1 ? 0 : k)]!;
        png.data[o + 3] = 255;
      }
  }
  return PNG.sync.write(png);
}

/** Normalised pixels [N, H, W, C] as 8-bit pixels: the form the set is stored and learnt in. */
export function toBytes(x: tf.Tensor, mean: readonly number[], std: readonly number[]): Uint8Array {
  const u8 = tf.tidy(() => {
    const p = tf.add(tf.mul(x, tf.tensor1d(std as number[])), tf.tensor1d(mean as number[]));
    return tf.cast(tf.round(tf.clipByValue(tf.mul(p, 255), 0, 255)), 'int32');
  });
  const bytes = Uint8Array.from(u8.dataSync());
  u8.dispose();
  return bytes;
}

/** The teacher's top-1 classes of 8-bit images (normalised by mean/std first). */
export function teacherClasses(
  model: tfl.LayersModel,
  bytes: Uint8Array,
  mean: readonly number[],
  std: readonly number[],
  shape: [number, number, number, number],
): Int32Array {
  return tf.tidy(() => {
    const x = tf.div(
      tf.sub(tf.div(tf.tensor4d(Float32Array.from(bytes), shape), 255), tf.tensor1d(mean as number[])),
      tf.tensor1d(std as number[]),
    );
    return tf.argMax(model.predict(x) as tf.Tensor, 1).dataSync() as Int32Array;
  });
}

/** Refuses an ONNX teacher (before the run folder exists): `why` the scheme needs a tfjs one. */
export function refuseOnnxTeacher(exp: Experiment, where: string, scheme: string, why: string): void {
  if (exp.teacher?.onnx !== undefined)
    throw new RetortError(
      `${where}: scheme ${scheme} ${why}: it needs a tfjs teacher (zoo run or checkpoint, or tfjs layers model), not an ONNX file`,
    );
}

/** The teacher's tfjs model, for the schemes that differentiate through it. */
export function teacherModel(ctx: SchemeContext<unknown>, scheme: string): tfl.LayersModel {
  const model = ctx.teacher?.model;
  if (model === undefined)
    throw new RetortError(
      `${ctx.where}: scheme ${scheme} needs a teacher that runs in this process on the student's inputs (a zoo run or checkpoint, or a tfjs layers model taking the data's shape)`,
    );
  return model;
}

/** Throws unless the labels fit the IDX byte format. */
export function checkByteLabels(where: string, scheme: string, numClasses: number): void {
  if (numClasses > 256)
    throw new RetortError(
      `${where}: scheme ${scheme} saves labels as bytes (the IDX format): at most 256 classes, the data has ${numClasses}`,
    );
}

/**
 * Saves `count` synthesized images and labels under `dir` (IDX files, grid.png), then trains the
 * run's student on them with the experiment's stages; `extra` is added to the result.
 */
export async function distillOnSynthetic(
  ctx: SchemeContext<unknown>,
  set: { pixels: Uint8Array; labels: Uint8Array; count: number; dir: string },
): Promise<SchemeOutput> {
  const { exp, data } = ctx;
  const [H, W, C] = data.shape;
  const { pixels, labels, count, dir } = set;
  writeFileAtomic(
    join(dir, 'train-images-idx3-ubyte'),
    idxBytes(pixels, C === 1 ? [count, H, W] : [count, H, W, C]),
  );
  writeFileAtomic(join(dir, 'train-labels-idx1-ubyte'), idxBytes(labels, [count]));
  writeFileAtomic(join(dir, 'grid.png'), gridPng(pixels, count, H, W, C));
  const synth: MemoryDataset = {
    name: `${exp.name}/synthetic`,
    images: pixels,
    labels,
    count,
    height: H,
    width: W,
    channels: C,
    numClasses: data.numClasses,
  };
  const common = { mean: data.mean, std: data.std, batchSize: exp.data.batchSize };
  // The data section's augmentation applies to the synthesized images (the teacher then runs on
  // every batch instead of from a cache).
  const train = new BatchLoader(synth, {
    ...common,
    shuffle: true,
    seed: exp.seed,
    cropPadding: exp.data.cropPadding,
    hflip: exp.data.hflip,
  });
  const trainPlain = new BatchLoader(synth, { ...common, shuffle: false, keepLast: true, seed: 0 });
  const digest = createHash('sha256').update(pixels).update(labels).digest('hex').slice(0, 16);
  return trainStages({
    exp,
    student: ctx.student,
    teacher: ctx.teacher,
    stages: ctx.stages,
    data: { ...data, train, trainPlain, key: `${data.key}|synthetic:${digest}` },
    dataInfo: { ...ctx.dataInfo, numExamples: count },
    runDir: ctx.runDir,
    resume: ctx.resume,
    cacheDir: ctx.cacheDir,
    log: ctx.log,
  });
}
