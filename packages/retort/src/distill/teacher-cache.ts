/**
 * Teacher outputs cached on disk so a frozen teacher runs once per dataset instead of once per
 * epoch. Valid only when the student sees exactly the images the cache was made from: with random
 * crops or flips every epoch shows new images, so the cache is refused and the reason logged.
 * Key: SHA-256 of the teacher's weights + the data/preprocessing key; file: <dir>/<key>.ckpt.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { BatchLoader } from '../data/loader.js';
import { loadCheckpoint, saveCheckpoint } from '../train/checkpoint.js';

/** Why teacher outputs cannot be cached for this data, or null when they can. */
export function cacheRefusal(data: { cropPadding: number; hflip: boolean }): string | null {
  const aug = [
    data.cropPadding > 0 ? `random crops (cropPadding ${data.cropPadding})` : '',
    data.hflip ? 'horizontal flips' : '',
  ]
    .filter(Boolean)
    .join(' and ');
  return aug ? `teacher outputs not cached: ${aug} change the inputs every epoch` : null;
}

/** SHA-256 over every weight's shape and bytes, in order. */
export function weightsHash(model: tfl.LayersModel): string {
  const h = createHash('sha256');
  for (const w of model.weights) {
    const v = w.read().dataSync() as Float32Array;
    h.update(w.shape.join('x'));
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest('hex');
}

export class TeacherCache {
  private constructor(
    /** Logits by dataset index, [datasetSize, K]. */
    private readonly logits: Float32Array,
    readonly numClasses: number,
    readonly path: string,
    readonly reused: boolean,
  ) {}

  /**
   * Loads the cache for (teacher, data) from `dir`, or computes it by running the teacher over
   * `plain` (the un-augmented training loader) and writes it atomically.
   */
  static build(teacher: tfl.LayersModel, plain: BatchLoader, dataKey: string, dir: string): TeacherCache {
    const key = createHash('sha256').update(weightsHash(teacher)).update(dataKey).digest('hex').slice(0, 32);
    const path = join(dir, `${key}.ckpt`);
    const K = teacher.outputs[0]!.shape.at(-1) as number;
    const size = plain.data.count;
    if (existsSync(path)) {
      const ck = loadCheckpoint(path);
      const v = ck.values.get('logits');
      if (v === undefined || v.data.length !== size * K)
        throw new Error(`teacher cache ${path}: wrong contents; delete it to rebuild`);
      return new TeacherCache(v.data, K, path, true);
    }
    const logits = new Float32Array(size * K);
    const shape = teacher.inputs[0]!.shape.slice(1) as number[];
    for (const b of plain.epoch()) {
      const out = tf.tidy(() => teacher.predict(tf.tensor(b.x, [b.n, ...shape])) as tf.Tensor);
      const vals = out.dataSync() as Float32Array;
      out.dispose();
      for (let k = 0; k < b.n; k++) logits.set(vals.subarray(k * K, (k + 1) * K), b.index[k]! * K);
    }
    mkdirSync(dir, { recursive: true });
    const t = tf.tensor2d(logits, [size, K]);
    saveCheckpoint(path, { epoch: 0, globalStep: 0, meta: { dataKey } }, [{ name: 'logits', tensor: t }]);
    t.dispose();
    return new TeacherCache(logits, K, path, false);
  }

  /** Teacher logits [n, K] for dataset indices `index`. */
  lookup(index: Uint32Array): tf.Tensor2D {
    const K = this.numClasses;
    const out = new Float32Array(index.length * K);
    for (let k = 0; k < index.length; k++)
      out.set(this.logits.subarray(index[k]! * K, (index[k]! + 1) * K), k * K);
    return tf.tensor2d(out, [index.length, K]);
  }
}
