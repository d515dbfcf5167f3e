/**
 * Calibration of post-training int8 (ptq.ts): the float model runs in onnxruntime on the user's
 * batches with every tensor that needs a range added as a graph output, and each tensor's range is
 * its min and max over all batches: min-max, the default of onnxruntime's Python quantizer and of
 * the exporter's calibrateRanges. It never clips; percentile or entropy calibration would trade the
 * few largest activations for resolution elsewhere, and need a histogram per tensor.
 */
import type { onnx as O } from 'onnx-proto';
import type { Tensor as OrtTensor } from 'onnxruntime-node';
import { loadOrt } from '../../util/ort.js';
import { F32, onnx } from './graph.js';
import type { Fail } from './ptq-graph.js';

/**
 * One calibration batch in the model's own input layout: a float32 onnxruntime tensor, or a
 * Float32Array holding whole samples (the batch size is its length over one sample's size).
 */
export type CalibrationBatch = Float32Array | OrtTensor;

/** The model input: its name and dims (null where symbolic, such as the batch). */
export interface ModelInput {
  name: string;
  dims: (number | null)[];
}

/**
 * Min-max range of each of `tensors` (a tensor computed by the graph, or the model input) over
 * `batches`. `model` is the float model; it is not modified. Fails on no batches, a batch of the
 * wrong size or type, a failing run, or a range that is not finite.
 */
export async function calibrateOnnx(
  model: O.IModelProto,
  input: ModelInput,
  tensors: readonly string[],
  batches: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  fail: Fail,
): Promise<{ ranges: Map<string, [number, number]>; samples: number }> {
  const graph = model.graph!;
  const have = new Set((graph.output ?? []).map((o) => o.name));
  const fetch = tensors.filter((t) => t !== input.name);
  const extra = fetch
    .filter((t) => !have.has(t))
    .map((name) => ({ name, type: { tensorType: { elemType: F32 } } }));
  const probe = onnx.ModelProto.encode({
    ...model,
    graph: { ...graph, output: [...(graph.output ?? []), ...extra] },
  }).finish();
  const ort = await loadOrt('int8 calibration of an ONNX model');
  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>>;
  try {
    session = await ort.InferenceSession.create(probe);
  } catch (e) {
    return fail(`onnxruntime cannot load the model: ${(e as Error).message}`);
  }
  const ranges = new Map<string, [number, number]>();
  const nan = new Set<string>();
  const widen = (name: string, data: Float32Array) => {
    let [lo, hi] = ranges.get(name) ?? [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      // NaN fails both comparisons: it would pass unseen.
      else if (Number.isNaN(v)) nan.add(name);
    }
    ranges.set(name, [lo, hi]);
  };
  const sample = input.dims.slice(1);
  const sampleSize = sample.every((d) => d !== null) ? sample.reduce((a, b) => a * b, 1) : null;
  let samples = 0;
  let k = 0;
  try {
    for await (const b of batches) {
      const at = `calibration batch ${k}`;
      let t: OrtTensor;
      if (b instanceof Float32Array) {
        if (sampleSize === null)
          fail(
            `${at}: input '${input.name}' has symbolic dims [${input.dims.map((d) => d ?? '?').join(', ')}]; give onnxruntime tensors instead of Float32Arrays`,
          );
        if (b.length === 0 || b.length % sampleSize !== 0)
          fail(
            `${at}: ${b.length} values are not whole samples of [${sample.join(', ')}] (${sampleSize} values each) for input '${input.name}'`,
          );
        t = new ort.Tensor('float32', b, [b.length / sampleSize, ...(sample as number[])]);
      } else if (b && typeof b === 'object' && (b as OrtTensor).type === 'float32') t = b;
      else
        fail(
          `${at}: expected a Float32Array or a float32 onnxruntime tensor, got ${(b as OrtTensor | null)?.type ?? typeof b}`,
        );
      let res: Record<string, OrtTensor> = {};
      try {
        // onnxruntime refuses an empty fetch list: with only the input to range, nothing runs.
        if (fetch.length > 0) res = await session.run({ [input.name]: t }, fetch);
      } catch (e) {
        return fail(`${at} (dims [${t.dims.join(', ')}]): onnxruntime failed: ${(e as Error).message}`);
      }
      if (tensors.includes(input.name)) widen(input.name, t.data as Float32Array);
      for (const name of fetch) {
        const r = res[name];
        if (r === undefined || r.type !== 'float32')
          fail(`tensor '${name}' is ${r?.type ?? 'missing'} in onnxruntime's results, expected float32`);
        widen(name, r.data as Float32Array);
      }
      samples += Number(t.dims[0] ?? 1);
      k++;
    }
  } finally {
    await session.release().catch(() => {});
  }
  if (k === 0) fail('no calibration batches: give a few hundred samples in the model input layout');
  for (const name of tensors) {
    const r = ranges.get(name);
    if (!r || !Number.isFinite(r[0]) || !Number.isFinite(r[1]) || nan.has(name))
      fail(`tensor '${name}' took non-finite or no values on the calibration batches`);
  }
  return { ranges, samples };
}
