/**
 * Int8 quantization parameters: the int8 / uint8 ranges, and the one quantizer of float weights to
 * int8 values and scales, which every int8 file Retort writes stores (the static and dynamic int8
 * ONNX exports, export/onnx/quant.ts and dynamic.ts, and the int8 of any ONNX file,
 * export/onnx/ptq.ts).
 *
 * Weights are symmetric: q in [-qmax, qmax] with zero point 0, qmax the export target's (63
 * portable, 127 vnni/arm64; export/onnx/target.ts), w ~ q * s. Training works on the same grid in
 * float32 tensor ops (qat.ts fakeQuantKernel: weight QAT, mixed precision, the pipeline's int8
 * kernels); weights it has put on the grid come back here as the same integers.
 */
export type QDType = 'int8' | 'uint8';

export const QRANGE: Record<QDType, [number, number]> = { int8: [-128, 127], uint8: [0, 255] };

/**
 * Symmetric int8 values of `data` (row-major, shape `dims`): one scale per channel along `axis`
 * (`perChannel`), or one for the whole tensor. A scale is max |w| / qmax as float32 (1 for an
 * all-zero slice); q = clamp(round(w / s), -qmax, qmax), the quotient in float64, rounded by
 * Math.round (ties toward +infinity). `qmax`: an integer in [1, 127].
 */
export function quantizeInt8(
  data: Float32Array,
  dims: readonly number[],
  axis: number,
  perChannel: boolean,
  qmax: number,
): { q: Int8Array; scales: Float32Array } {
  if (!(Number.isInteger(qmax) && qmax >= 1 && qmax <= 127))
    throw new Error(`quantizeInt8: qmax must be an integer in [1, 127], got ${qmax}`);
  const c = perChannel ? dims[axis]! : 1;
  const inner = perChannel ? dims.slice(axis + 1).reduce((a, b) => a * b, 1) : data.length;
  const chan = (i: number) => Math.floor(i / inner) % c;
  const maxAbs = new Float32Array(c);
  for (let i = 0; i < data.length; i++) maxAbs[chan(i)] = Math.max(maxAbs[chan(i)]!, Math.abs(data[i]!));
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / qmax : 1));
  const q = Int8Array.from(data, (v, i) => Math.max(-qmax, Math.min(qmax, Math.round(v / scales[chan(i)]!))));
  return { q, scales };
}
