/**
 * From the student's batches to what an external teacher was trained on. The student's loader
 * yields NHWC images normalized with the dataset's per-channel mean and std (of [0, 1] pixels); a
 * teacher from PyTorch or tfjs expects its own mean/std, often its own size, sometimes three
 * channels where the data has one. Undoing one normalization and applying the other is one affine
 * map per channel: x_t = x * std_d / std_t + (mean_d - mean_t) / std_t.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RetortError } from '../util/errors.js';

export interface TeacherInput {
  /** [H, W] the teacher takes; images are resized bilinearly (half-pixel centers) when it differs. */
  inputSize?: readonly [number, number] | undefined;
  /** Channels the teacher takes; 3 from 1-channel data repeats the gray channel. */
  channels?: number | undefined;
  /** The teacher's own per-channel mean and std of [0, 1] pixels (one value = every channel). */
  mean?: readonly number[] | undefined;
  std?: readonly number[] | undefined;
}

export interface DataInput {
  shape: readonly [number, number, number];
  mean: readonly number[];
  std: readonly number[];
}

/**
 * The teacher's input from what its file fixes ([H, W, C], null where left open) and the config:
 * values both give must agree; the config fills what the file leaves open.
 */
export function fixedInput(
  fixed: readonly [number | null, number | null, number | null],
  cfg: TeacherInput,
  file: string,
  where: string,
): TeacherInput {
  const given = [cfg.inputSize?.[0], cfg.inputSize?.[1], cfg.channels];
  const names = ['input height', 'input width', 'input channels'];
  const out = fixed.map((f, i) => {
    const g = given[i];
    if (f !== null && g !== undefined && f !== g)
      throw new RetortError(`${where}: ${names[i]} is ${g} in the config and ${f} in ${file}`);
    return g ?? f ?? undefined;
  });
  const [h, w, c] = out;
  return {
    inputSize: h !== undefined && w !== undefined ? [h, w] : undefined,
    channels: c,
    mean: cfg.mean,
    std: cfg.std,
  };
}

/** The map (null when the teacher takes the student's batches as they are) and a key naming it. */
export function inputAdapter(
  data: DataInput,
  t: TeacherInput,
  where: string,
): { adapt: ((x: tf.Tensor) => tf.Tensor) | null; key: string; shape: [number, number, number] } {
  const [h, w, c] = data.shape;
  const tc = t.channels ?? c;
  if (tc !== c && !(c === 1 && tc === 3))
    throw new RetortError(`${where}: the teacher takes ${tc} channels and the data has ${c}`);
  const per = (v: readonly number[] | undefined, name: string): number[] | undefined => {
    if (v === undefined) return undefined;
    if (v.length === 1) return new Array<number>(c).fill(v[0]!);
    if (v.length === tc && tc === c) return [...v];
    if (v.length === tc && c === 1 && v.every((x) => x === v[0])) return [v[0]!];
    throw new RetortError(`${where}: ${name} has ${v.length} values for ${c}-channel data (give 1 or ${c})`);
  };
  const mean = per(t.mean, 'mean');
  const std = per(t.std, 'std');
  if ((mean === undefined) !== (std === undefined))
    throw new RetortError(`${where}: give both mean and std of the teacher's preprocessing, or neither`);
  if (std?.some((s) => !(s > 0))) throw new RetortError(`${where}: std values must be positive`);
  const [th, tw] = t.inputSize ?? [h, w];
  const resize = th !== h || tw !== w;
  const scale = mean && std ? data.std.map((s, i) => s / std[i]!) : null;
  const shift = mean && std ? data.mean.map((m, i) => (m - mean[i]!) / std[i]!) : null;
  const key = JSON.stringify({ scale, shift, size: [th, tw], channels: tc });
  if (!resize && scale === null && tc === c) return { adapt: null, key, shape: [th, tw, tc] };
  const adapt = (x: tf.Tensor) =>
    tf.tidy(() => {
      let y = x as tf.Tensor4D;
      if (scale && shift) y = tf.add(tf.mul(y, tf.tensor1d(scale)), tf.tensor1d(shift));
      if (resize) y = tf.image.resizeBilinear(y, [th, tw], false, true);
      if (tc !== c) y = tf.tile(y, [1, 1, 1, tc]);
      return y;
    });
  return { adapt, key, shape: [th, tw, tc] };
}
