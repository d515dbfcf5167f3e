/**
 * The fp16 pass of the ONNX export (`exportOnnx(model, { fp16: true })`): every float initializer
 * (conv and Dense weights and biases, batch-norm parameters and statistics, Clip bounds) is stored
 * as FLOAT16 and followed by a Cast to FLOAT, so the file holds half the weight bytes while the graph
 * computes in float32 exactly as the fp32 export does, on weights rounded to fp16 (round to nearest
 * even, export/float16.ts).
 *
 * Why not a graph that computes in fp16: onnxruntime 1.30's CPU execution provider accepts an fp16
 * graph of every op Retort emits (Conv, BatchNormalization, Gemm, pools, Relu/Clip/Sigmoid/Tanh,
 * Softmax, Add/Mul/Concat, Pad, Slice, Reshape, Transpose, ReduceMean: each checked as a one-node
 * fp16 model), but on x86-64 it has no fp16 kernels for them: its InsertCastTransformer casts them to
 * float. Measured here (ResNet-8, 28x28x1, batch 64, AMD EPYC with AVX-512 but no AVX512-FP16): the
 * optimized fp16 graph is the fp32 graph (float NCHWc Convs and Gemm, float initializers) plus 3 Casts,
 * with the same latency within noise (fp32 / weights-only / full fp16: 16.9 / 18.4 / 15.2 ms and
 * 17.6 / 15.8 / 17.5 ms in two interleaved runs) and larger logit errors against the fp32 file
 * (4.8e-4 vs 3.1e-4 on a logit range of 1.0), as the input is rounded to fp16 too; and it would take
 * float16 input and give float16 output, unlike every other export. onnxruntime folds the Casts of
 * initializers into float constants when it loads the file, so inference pays nothing for them. A
 * full fp16 graph would pay off on GPUs and ARM cores with fp16 arithmetic; this export is for the
 * file size (half the weight bytes) on any runtime.
 */
import type { onnx as O } from 'onnx-proto';
import { toFloat16 } from '../float16.js';
import { F32, type GraphBuilder, onnx } from './graph.js';

export const F16 = onnx.TensorProto.DataType.FLOAT16;

/**
 * Rewrites the float initializers of `g` as FLOAT16 `<name>.fp16` with a Cast to FLOAT named
 * `<name>` (the name every node already reads), the Casts placed before all other nodes. Returns
 * the number of initializers converted. A weight beyond float16's range throws naming it.
 */
export function fp16Initializers(g: GraphBuilder): number {
  const casts: O.INodeProto[] = [];
  for (const init of g.inits) {
    if (init.dataType !== F32) continue;
    const name = init.name!;
    const raw = init.rawData!;
    // A copy (a Node Buffer's slice() would share memory): the float view needs 4-byte alignment.
    const values = new Float32Array(new Uint8Array(raw).buffer);
    const half = toFloat16(values, `initializer '${name}'`);
    init.name = `${name}.fp16`;
    init.dataType = F16;
    init.rawData = new Uint8Array(half.buffer);
    casts.push({
      opType: 'Cast',
      input: [init.name],
      output: [name],
      name: `${name}.cast`,
      attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: F32 }],
    });
  }
  g.nodes.unshift(...casts);
  return casts.length;
}
