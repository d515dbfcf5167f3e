/**
 * Teacher outputs cached on disk so a frozen teacher runs once per dataset instead of once per
 * epoch. Valid only when the student sees exactly the images the cache was made from: with random
 * crops or flips every epoch shows new images, so the cache is refused and the reason logged.
 * Key: SHA-256 of the teacher's weights + the data/preprocessing key (+ the tapped layers when
 * features are cached); file: <dir>/<key>.ckpt.
 *
 * Besides the logits, the teacher's tapped features are cached when they fit `maxFeatureBytes`
 * (default 1 GiB for the whole training set, held in memory): a penultimate embedding (CRD, PKT,
 * RKD, CC: 64 floats per image on ResNet-20) is 15 MB for Fashion-MNIST and SP's last stage
 * (7 x 7 x 64) 718 MiB, so those methods stop running the teacher (a ResNet-20 forward is about 3x
 * a ResNet-8 one) every step; several stages of feature maps (AT, VID, AB: 5 GiB) stay live, with
 * the reason logged.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { BatchLoader } from '../data/loader.js';
import { asTeacher } from '../teachers/layers.js';
import type { Teacher, TeacherView } from '../teachers/types.js';
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

/** Teacher taps to cache along with the logits: the tapped view and its layer names, in order. */
export interface CachedTaps {
  view: TeacherView;
  layers: readonly string[];
}

export const DEFAULT_MAX_FEATURE_BYTES = 2 ** 30;

export class TeacherCache {
  private constructor(
    /** Logits by dataset index, [datasetSize, K]. */
    private readonly logits: Float32Array,
    readonly numClasses: number,
    readonly path: string,
    readonly reused: boolean,
    /** Tapped layers whose features are cached, in tap order (empty: logits only). */
    readonly layers: readonly string[],
    /** Features by tap, [datasetSize, ...shape]. */
    private readonly features: readonly Float32Array[],
    private readonly shapes: readonly number[][],
    /** Why the taps are not cached (over the size limit), or null. */
    readonly featureRefusal: string | null,
  ) {}

  /**
   * Loads the cache for (teacher, data[, taps]) from `dir`, or computes it by running the teacher
   * (or its tapped view) over `plain` (the un-augmented training loader) and writes it atomically.
   * Taps whose features would exceed `maxFeatureBytes` are not cached (featureRefusal says why).
   */
  static async build(
    teacherOrModel: Teacher | tfl.LayersModel,
    plain: BatchLoader,
    dataKey: string,
    dir: string,
    taps?: CachedTaps,
    maxFeatureBytes = DEFAULT_MAX_FEATURE_BYTES,
  ): Promise<TeacherCache> {
    const teacher = asTeacher(teacherOrModel);
    const size = plain.data.count;
    const per = taps ? taps.view.shapes.map((s) => s.reduce((a, b) => a * b, 1)) : [];
    const featBytes = per.reduce((a, b) => a + b, 0) * size * 4;
    let refusal: string | null = null;
    if (taps && taps.layers.length > 0 && featBytes > maxFeatureBytes)
      refusal = `teacher features not cached: taps ${taps.layers.join(', ')} take ${(featBytes / 2 ** 20).toFixed(0)} MiB for ${size} images, over the ${(maxFeatureBytes / 2 ** 20).toFixed(0)} MiB limit; the teacher runs every step`;
    const cached = taps && refusal === null ? taps : undefined;
    const layers = cached ? [...cached.layers] : [];
    const shapes = cached ? cached.view.shapes : [];
    const h = createHash('sha256').update(teacher.identity()).update(dataKey);
    if (layers.length > 0) h.update(`\0taps:${layers.join(',')}`);
    const key = h.digest('hex').slice(0, 32);
    const path = join(dir, `${key}.ckpt`);
    const K = teacher.numClasses;
    if (existsSync(path)) {
      const ck = loadCheckpoint(path);
      const v = ck.values.get('logits');
      const fs = layers.map((_, i) => ck.values.get(`feature${i}`));
      if (
        v === undefined ||
        v.data.length !== size * K ||
        fs.some((f, i) => f?.data.length !== size * per[i]!)
      )
        throw new Error(`teacher cache ${path}: wrong contents; delete it to rebuild`);
      return new TeacherCache(
        v.data,
        K,
        path,
        true,
        layers,
        fs.map((f) => f!.data),
        shapes,
        refusal,
      );
    }
    const logits = new Float32Array(size * K);
    const features = layers.map((_, i) => new Float32Array(size * per[i]!));
    const shape = [plain.data.height, plain.data.width, plain.data.channels];
    const view = cached ? cached.view : teacher.tap([]);
    for (const b of plain.epoch()) {
      // With paired views the teacher sees its own view of the samples.
      const x = b.teacherX
        ? tf.tensor(b.teacherX, [b.n, ...b.teacherShape!])
        : tf.tensor(b.x, [b.n, ...shape]);
      const r = await view.run(x);
      x.dispose();
      const outs = [r.logits, ...r.features];
      const put = (vals: Float32Array, dst: Float32Array, d: number) => {
        for (let k = 0; k < b.n; k++) dst.set(vals.subarray(k * d, (k + 1) * d), b.index[k]! * d);
      };
      put(outs[0]!.dataSync() as Float32Array, logits, K);
      for (const [i, f] of features.entries()) put(outs[i + 1]!.dataSync() as Float32Array, f, per[i]!);
      tf.dispose(outs);
    }
    mkdirSync(dir, { recursive: true });
    const ts = [
      { name: 'logits', tensor: tf.tensor2d(logits, [size, K]) as tf.Tensor },
      ...features.map((f, i) => ({ name: `feature${i}`, tensor: tf.tensor(f, [size, ...shapes[i]!]) })),
    ];
    saveCheckpoint(path, { epoch: 0, globalStep: 0, meta: { dataKey, taps: layers } }, ts);
    tf.dispose(ts.map((t) => t.tensor));
    return new TeacherCache(logits, K, path, false, layers, features, shapes, refusal);
  }

  /** Whether every layer of `taps` is cached (in any order). */
  covers(taps: readonly string[]): boolean {
    return taps.every((t) => this.layers.includes(t));
  }

  /** Teacher logits [n, K] for dataset indices `index`. */
  lookup(index: Uint32Array): tf.Tensor2D {
    return tf.tensor2d(gatherRows(this.logits, this.numClasses, index), [index.length, this.numClasses]);
  }

  /** Cached features of `taps` (each a cached layer) for dataset indices `index`, in `taps`' order. */
  lookupFeatures(index: Uint32Array, taps: readonly string[]): tf.Tensor[] {
    return taps.map((t) => {
      const i = this.layers.indexOf(t);
      if (i < 0) throw new Error(`teacher cache ${this.path}: tap '${t}' is not cached`);
      const shape = this.shapes[i]!;
      const d = shape.reduce((a, b) => a * b, 1);
      return tf.tensor(gatherRows(this.features[i]!, d, index), [index.length, ...shape]);
    });
  }
}

/** Rows `index` of a row-major [*, d] array. */
function gatherRows(src: Float32Array, d: number, index: Uint32Array): Float32Array {
  const out = new Float32Array(index.length * d);
  for (let k = 0; k < index.length; k++) out.set(src.subarray(index[k]! * d, (index[k]! + 1) * d), k * d);
  return out;
}
