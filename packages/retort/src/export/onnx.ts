/**
 * ONNX export (opset 13, IR 7) of the zoo's functional tfjs-layers models: fp32, static int8 QDQ
 * (`quant`, calibrated activation ranges), dynamic int8 (`dynamic`, activations quantized per run)
 * or fp16 weights (`fp16`, onnx/fp16.ts: FLOAT16 initializers cast to float, computed in fp32).
 *
 * The pieces, under onnx/: walk.ts goes over the layers in model order (layouts: the ONNX model
 * takes the same NHWC input as Retort and gives the same outputs), ops.ts holds the op table (one
 * family per ops-*.ts file: layer class -> emitter and int8 placement; an unsupported layer fails
 * naming the layer and its class), graph.ts the node/initializer builder and the ModelProto,
 * int8.ts the static int8 QDQ pass (where the Q -> DQ pairs go and why), quant.ts its
 * quantization arithmetic, dynamic.ts the dynamic int8 nodes, target.ts the int8 weight ranges.
 *
 * Dynamic int8 (`dynamic`, see onnx/dynamic.ts): no calibration; batch norm folded as in static
 * int8; Dense layers and the convs `dynamicPlan` accepts become DynamicQuantizeLinear ->
 * MatMulInteger on int8 weights (convs on NHWC, with an im2col where the kernel or stride exceeds
 * 1), which onnxruntime fuses into DynamicQuantizeMatMul / MatMulIntegerToFloat; everything else
 * stays fp32 (a global average pool over an NHWC value is a ReduceMean). 1 thread,
 * Fashion-MNIST-sized inputs, dynamic/fp32 latency at batch 1 and 64: ResNet-8 1.03-1.07 and
 * 0.90-0.93, LightNN 0.74 and 0.85, MobileNetV2 (x0.5, 32x32x3) 1.04-1.07 and 0.89-0.99; static
 * int8 is faster wherever its integer kernels cover the graph (ResNet-8 0.56 and 0.46).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { DynamicQuantizer, type DynamicQuantOptions } from './onnx/dynamic.js';
import { fp16Initializers } from './onnx/fp16.js';
import { encodeModel, GraphBuilder } from './onnx/graph.js';
import { Int8Pass } from './onnx/int8.js';
import type { QuantSpec, WeightGranularity } from './onnx/quant.js';
import { type Int8Target, weightQmax } from './onnx/target.js';
import { graphFacts, walkLayers } from './onnx/walk.js';

export { type ConvShape, type DynamicQuantOptions, dynamicPlan } from './onnx/dynamic.js';
export { permute } from './onnx/graph.js';
export { type Int8QuantPoints, int8QuantPoints } from './onnx/int8.js';
export {
  calibrateRanges,
  type QuantSpec,
  WEIGHT_GRANULARITIES,
  type WeightGranularity,
} from './onnx/quant.js';
export {
  INT8_TARGETS,
  type Int8Target,
  targetNotice,
  WEIGHT_QMAX,
  weightQmax,
} from './onnx/target.js';

export interface OnnxExportOptions {
  producer?: string;
  /** Calibrated ranges: writes int8 QDQ instead of fp32. */
  quant?: QuantSpec;
  /**
   * Dynamic int8 (`true` or options): int8 weights written here, activations quantized per run
   * by onnxruntime; no calibration data. Exclusive with `quant`. See onnx/dynamic.ts.
   */
  dynamic?: boolean | DynamicQuantOptions;
  /** Int8 weight scales (static or dynamic): per output channel (default) or one per tensor. */
  weights?: WeightGranularity;
  /**
   * Which CPUs the int8 file is right on (onnx/target.ts): 'portable' (default; 7-bit weights,
   * exact on every x86-64 and ARM64), 'vnni' or 'arm64' (full 8-bit weights).
   */
  target?: Int8Target;
  /** fp16 weights: FLOAT16 initializers, each Cast to float (onnx/fp16.ts); not with int8. */
  fp16?: boolean;
}

/**
 * Builds the ONNX ModelProto bytes for a functional (or sequential) tfjs-layers model: fp32,
 * int8 QDQ with `opts.quant` (from calibrateRanges), or dynamic int8 with `opts.dynamic`; int8
 * weights scaled per `opts.weights`. The input is NHWC [N, H, W, C] float, named `input`.
 */
export function exportOnnx(model: tfl.LayersModel, opts: OnnxExportOptions = {}): Uint8Array {
  const quant = opts.quant;
  const weightsMode = opts.weights ?? 'per-channel';
  if (weightsMode !== 'per-channel' && weightsMode !== 'per-tensor')
    throw new Error(
      `onnx export: weights must be 'per-channel' or 'per-tensor', got '${String(weightsMode)}'`,
    );
  const qmax = weightQmax(opts.target, 'onnx export');
  const dynamic = opts.dynamic === true ? {} : opts.dynamic || undefined;
  if (quant && dynamic)
    throw new Error('onnx export: give quant (static int8) or dynamic (dynamic int8), not both');
  if (opts.fp16 && (quant || dynamic))
    throw new Error('onnx export: fp16 weights are not combined with int8');
  const minChannels = dynamic?.minChannels;
  if (minChannels !== undefined && !(Number.isInteger(minChannels) && minChannels >= 1))
    throw new Error(`onnx export: dynamic.minChannels must be a positive integer, got ${minChannels}`);
  const g = new GraphBuilder();
  // Int8 (static or dynamic): batch norms that directly follow a conv (its only consumer) are
  // folded into it.
  const facts = graphFacts(model, Boolean(quant) || dynamic !== undefined);
  const { inputs, outputs } = walkLayers(model, g, facts, {
    int8: quant ? new Int8Pass(g, quant, weightsMode, qmax, facts) : undefined,
    dynamic: dynamic ? { dz: new DynamicQuantizer(g, weightsMode, qmax), opts: dynamic } : undefined,
  });
  if (opts.fp16) fp16Initializers(g);
  return encodeModel(g, { name: model.name, producer: opts.producer ?? 'retort', inputs, outputs });
}
