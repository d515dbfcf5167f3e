/**
 * An ONNX export checked against the tfjs model it came from, in onnxruntime on the test set: its
 * own top-1, how often its top-1 equals the model's, and the largest logit difference. One pass
 * for any number of exports of the same model, so the tfjs forward runs once per batch (the
 * compress pipeline checks its fp32 and int8 exports together; `retort export` checks one).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import type { Loader } from '../data/loader.js';
import { rowArgmax } from '../util/argmax.js';
import { loadOrt } from '../util/ort.js';

export interface OnnxCheck {
  /** % of test images the export classifies correctly. */
  top1: number;
  /** % of test images where the export's top-1 equals the tfjs model's. */
  agreement: number;
  /** Largest |onnxruntime logit - tfjs logit| over the test set. */
  maxAbsDiff: number;
  /** Largest |tfjs logit| over the test set: the scale of maxAbsDiff (the fp16 check's is relative). */
  maxAbsRef: number;
  images: number;
  /** % of test images where the export's top-1 equals `original`'s (when given). */
  originalAgreement?: number;
}

/** Checks every export in `onnx` (one per entry, same order) against `model` on `data.test`. */
export async function checkOnnx(
  onnx: readonly Uint8Array[],
  model: tfl.LayersModel,
  data: { test: Loader; shape: readonly number[]; numClasses: number },
  /** Another model's top-1 per test image, in the loader's order (the model before compression). */
  original?: Int32Array,
): Promise<OnnxCheck[]> {
  const ort = await loadOrt('checking ONNX exports');
  const sessions = await Promise.all(onnx.map((b) => ort.InferenceSession.create(b)));
  const k = data.numClasses;
  const acc = onnx.map(() => ({ correct: 0, agree: 0, maxAbsDiff: 0, agreeOriginal: 0 }));
  let n = 0;
  let maxAbsRef = 0;
  for await (const b of data.test.epoch()) {
    const ref = tf.tidy(() => model.predict(tf.tensor(b.x, [b.n, ...data.shape])) as tf.Tensor);
    const want = ref.dataSync() as Float32Array;
    ref.dispose();
    for (const v of want) maxAbsRef = Math.max(maxAbsRef, Math.abs(v));
    const wantTop = Array.from({ length: b.n }, (_, i) => rowArgmax(want, i, k));
    const feed = { input: new ort.Tensor('float32', b.x, [b.n, ...data.shape]) };
    for (const [s, session] of sessions.entries()) {
      const got = (await session.run(feed))['output']!.data as Float32Array;
      const a = acc[s]!;
      for (let i = 0; i < b.n; i++) {
        const top = rowArgmax(got, i, k);
        if (top === b.y[i]) a.correct++;
        if (top === wantTop[i]) a.agree++;
        if (original && top === original[n + i]) a.agreeOriginal++;
      }
      for (let j = 0; j < got.length; j++)
        a.maxAbsDiff = Math.max(a.maxAbsDiff, Math.abs(got[j]! - want[j]!));
    }
    n += b.n;
  }
  // Released before any timing: idle onnxruntime threads would slow the timed sessions.
  await Promise.all(sessions.map((s) => s.release()));
  return acc.map((a) => ({
    top1: (100 * a.correct) / n,
    agreement: (100 * a.agree) / n,
    maxAbsDiff: a.maxAbsDiff,
    maxAbsRef,
    images: n,
    ...(original ? { originalAgreement: (100 * a.agreeOriginal) / n } : {}),
  }));
}
