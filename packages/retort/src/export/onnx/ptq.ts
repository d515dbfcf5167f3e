/**
 * Post-training static int8 of an existing fp32 ONNX model, in JS: what onnxruntime's Python
 * `quantize_static` does with QuantFormat.QDQ, without importing or retraining the model. Typical
 * input: a CNN exported from PyTorch (NCHW) or by Retort's exportOnnx (NHWC).
 *
 * Steps: batch norms after convs are folded (ptq-graph.ts); Conv, Gemm and MatMul nodes with
 * constant float weights get int8 symmetric weights (per output channel or per tensor, |q| <= the
 * target's qmax, target.ts) and int32 biases (scale = input scale x weight scale); the activations
 * the plan picks (ptq-plan.ts) are calibrated min-max in onnxruntime (ptq-calibrate.ts) and get
 * QuantizeLinear -> DequantizeLinear pairs, uint8 asymmetric with 0 exact (actQuant, quant.ts),
 * equal parameters sharing initializers. onnxruntime then fuses QLinearConv, QGemm, QLinearAdd, ...
 * Every other node, tensor name and graph output stays as it was; graph outputs stay float.
 */
import type { onnx as O } from 'onnx-proto';
import { RetortError } from '../../util/errors.js';
import { GraphBuilder, onnx } from './graph.js';
import { type CalibrationBatch, calibrateOnnx } from './ptq-calibrate.js';
import { dimsOf, type Fail, foldBatchNorms, GraphIndex, pruneInits, readFloat } from './ptq-graph.js';
import { planQuantization } from './ptq-plan.js';
import { actQuant, Quantizer, WEIGHT_GRANULARITIES, type WeightGranularity } from './quant.js';
import { type Int8Target, weightQmax } from './target.js';

export type { CalibrationBatch } from './ptq-calibrate.js';

export interface OnnxPtqOptions {
  /** Int8 weight scales: one per output channel (default) or one per tensor. */
  weights?: WeightGranularity;
  /** Which CPUs the file is right on (target.ts): 'portable' (default, 7-bit weights), 'vnni', 'arm64'. */
  target?: Int8Target;
  /** Names of nodes to keep float (as nodes_to_exclude of onnxruntime's quantizer). */
  exclude?: readonly string[];
  /**
   * 'float' (default): the convs that read the model input stay float, as in exportOnnx, because
   * onnxruntime's int8 conv over so few input channels is slower than its float one; 'int8'
   * quantizes them too.
   */
  stem?: 'float' | 'int8';
  /** The model's file name, for error messages. */
  name?: string;
}

export interface OnnxPtqResult {
  /** The int8 QDQ model. */
  bytes: Uint8Array;
  /** Number of Conv/Gemm/MatMul nodes with int8 weights. */
  nodes: number;
  /** Their names (or '#index' for unnamed nodes), in graph order. */
  quantized: string[];
  /** Number of tensors with a QuantizeLinear -> DequantizeLinear pair. */
  activations: number;
  /** Batch norms folded into the conv before them. */
  foldedBatchNorms: number;
  /** Calibration samples seen. */
  samples: number;
}

const FORBIDDEN = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'ConvInteger',
  'MatMulInteger',
]);

/**
 * Int8 QDQ version of the fp32 ONNX `model` (bytes of a ModelProto, default-domain opset >= 13,
 * one float input), calibrated on `calibration`: batches in the model's own input layout and
 * shape, e.g. [N, 1, 28, 28] for a PyTorch CNN, normalized as the model expects. A few hundred
 * samples suffice. Fails with a RetortError naming the file, node and op on anything unsupported.
 */
export async function quantizeOnnx(
  model: Uint8Array,
  calibration: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  opts: OnnxPtqOptions = {},
): Promise<OnnxPtqResult> {
  const where = opts.name ?? 'ONNX model';
  const fail: Fail = (m) => {
    throw new RetortError(`quantizeOnnx ${where}: ${m}`, opts.name === undefined ? {} : { file: opts.name });
  };
  const weights = opts.weights ?? 'per-channel';
  if (!WEIGHT_GRANULARITIES.includes(weights))
    fail(`weights must be ${WEIGHT_GRANULARITIES.join(' or ')}, got '${String(weights)}'`);
  let qmax = 0;
  try {
    qmax = weightQmax(opts.target, 'options');
  } catch (e) {
    fail((e as Error).message);
  }
  const stem = opts.stem ?? 'float';
  if (stem !== 'float' && stem !== 'int8') fail(`stem must be 'float' or 'int8', got '${String(stem)}'`);

  let proto: O.ModelProto;
  try {
    proto = onnx.ModelProto.decode(model);
  } catch (e) {
    return fail(`not an ONNX model (${(e as Error).message})`);
  }
  const graph = proto.graph;
  if (!graph || (graph.node ?? []).length === 0 || (graph.output ?? []).length === 0)
    fail('the file holds no graph with nodes and outputs');
  const opset = (proto.opsetImport ?? []).find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  const version = Number(opset?.version ?? 0);
  if (version < 13)
    fail(
      `opset ${version || 'missing'}: int8 QDQ with per-channel DequantizeLinear needs opset 13 or later (re-export with opset_version=13, or convert the model)`,
    );
  const ix0 = new GraphIndex(graph);
  for (const [i, n] of ix0.nodes.entries()) {
    if (FORBIDDEN.has(n.opType ?? '') || (n.opType ?? '').startsWith('QLinear'))
      fail(`${ix0.label(i)}: the model is already quantized`);
    if ((n.attribute ?? []).some((a) => a.g || (a.graphs ?? []).length > 0))
      fail(`${ix0.label(i)}: control flow with subgraphs is not supported`);
  }
  const inputs = (graph.input ?? []).filter((v) => !ix0.inits.has(v.name ?? ''));
  if (inputs.length !== 1)
    fail(`expected one model input, found ${inputs.length} (${inputs.map((v) => `'${v.name}'`).join(', ')})`);
  const input = inputs[0]!;
  const tt = input.type?.tensorType;
  if (tt?.elemType !== onnx.TensorProto.DataType.FLOAT) fail(`input '${input.name}' is not a float32 tensor`);
  const dims = (tt?.shape?.dim ?? []).map((d) =>
    d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null,
  );
  const nodeNames = new Set(ix0.nodes.map((n) => n.name ?? ''));
  for (const x of opts.exclude ?? []) if (!nodeNames.has(x)) fail(`exclude: no node is named '${x}'`);

  const used = new Set<string>([
    ...ix0.nodes.flatMap((n) => [...(n.output ?? []), ...(n.input ?? []), n.name ?? '']),
    ...ix0.inits.keys(),
    ...(graph.output ?? []).map((o) => o.name ?? ''),
  ]);
  const folded = foldBatchNorms(graph, used, fail);
  const ix = new GraphIndex(graph);
  const plan = planQuantization(
    ix,
    input.name!,
    { exclude: new Set(opts.exclude ?? []), floatStem: stem === 'float' },
    fail,
  );
  if (plan.layers.length === 0)
    fail('nothing to quantize: no Conv, Gemm or MatMul node with constant weights outside the float stem');
  const own = [...plan.acts].filter(([, a]) => a.share === undefined).map(([t]) => t);
  const { ranges, samples } = await calibrateOnnx(proto, { name: input.name!, dims }, own, calibration, fail);

  // Q -> DQ pairs and int8 weights are built apart, then spliced in after their producers.
  const g = new GraphBuilder();
  const qz = new Quantizer(g, weights, qmax);
  const qzTensor = weights === 'per-tensor' ? qz : new Quantizer(g, 'per-tensor', qmax);
  const qOf = (t: string): ReturnType<typeof actQuant> => {
    const share = plan.acts.get(t)?.share;
    return share === undefined ? actQuant(ranges.get(t)!) : qOf(share);
  };
  const unique = (base: string) => {
    let b = base;
    for (let k = 1; ['q', 'scale', 'zp', 'dq'].some((s) => used.has(`${b}.${s}`)); k++) b = `${base}_${k}`;
    for (const s of ['q', 'scale', 'zp', 'dq']) used.add(`${b}.${s}`);
    return b;
  };
  const after = new Map<number, O.INodeProto[]>(); // producer index (-1: the top) -> new nodes
  const emit = (at: number, from: number) => {
    after.set(at, [...(after.get(at) ?? []), ...g.nodes.slice(from)]);
  };
  const dq = new Map<string, string>();
  for (const t of plan.acts.keys()) {
    const from = g.nodes.length;
    dq.set(t, qz.qdq({ name: t, layout: 'nchw', shape: [] }, qOf(t), t).name);
    emit(ix.producer.get(t) ?? -1, from);
  }
  const replaced = new Set<string>();
  for (const l of plan.layers) {
    const n = ix.nodes[l.node]!;
    const ins = [...(n.input ?? [])];
    const label = ix.label(l.node);
    const wt = ix.inits.get(ins[1]!)!;
    const quant = l.axis === null ? qzTensor : qz;
    const from = g.nodes.length;
    const w = quant.weight(unique(wt.name!), readFloat(wt, label, fail), dimsOf(wt), l.axis ?? 0);
    replaced.add(ins[1]!);
    ins[1] = w.name;
    if (l.bias) {
      const bt = ix.inits.get(ins[2]!)!;
      const b = readFloat(bt, label, fail);
      const inScale = qOf(ins[0]!).scale;
      // An int32 bias past 2^31 x its scale would wrap: such a layer keeps its float bias.
      const fits = b.every(
        (v, j) => Math.abs(v / (inScale * w.scales[w.scales.length > 1 ? j : 0]!)) < 2 ** 31 - 1,
      );
      if (fits) {
        replaced.add(ins[2]!);
        ins[2] = quant.bias(unique(bt.name!), b, inScale, w.scales);
      }
    }
    n.input = ins;
    emit(-1, from);
  }
  const nodes: O.INodeProto[] = [...(after.get(-1) ?? [])];
  for (const [i, n] of ix.nodes.entries()) {
    n.input = (n.input ?? []).map((x) => dq.get(x) ?? x);
    nodes.push(n, ...(after.get(i) ?? []));
  }
  graph.node = nodes;
  graph.initializer = [...(graph.initializer ?? []), ...g.inits];
  pruneInits(graph, replaced);
  const seen = new Set<string>();
  for (const x of [...nodes.flatMap((n) => n.output ?? []), ...graph.initializer.map((t) => t.name ?? '')]) {
    if (x && (seen.has(x) || x === input.name))
      fail(`a generated name clashes with the model's tensor '${x}'`);
    seen.add(x);
  }
  return {
    bytes: onnx.ModelProto.encode(proto).finish(),
    nodes: plan.layers.length,
    quantized: plan.layers.map((l) => ix.nodes[l.node]!.name || `#${l.node}`),
    activations: plan.acts.size,
    foldedBatchNorms: folded,
    samples,
  };
}
