/**
 * The plan of post-training int8 (ptq.ts): which nodes get int8 weights and which tensors get
 * a QuantizeLinear -> DequantizeLinear pair.
 *
 * The plan follows what onnxruntime 1.30's QDQ fusions need (the rules the exporter learned, see
 * quant.ts and export/onnx.ts):
 *  - a quantized Conv/Gemm/MatMul has Q/DQ on its activation input and on its output, except an
 *    output that only reaches graph outputs (QGemm and MatMulIntegerToFloat write float, and a pair
 *    there would only round the logits);
 *  - an output read only by Relu nodes is quantized after the Relu instead (its range starts at 0,
 *    so the zero point is 0 and onnxruntime removes the Relu and fuses Conv/Add + Relu);
 *  - Add, GlobalAveragePool and AveragePool reading a quantized tensor are quantized whole (inputs
 *    and output: QLinearAdd, QLinearGlobalAveragePool, QLinearAveragePool);
 *  - MaxPool and layout ops (Flatten, Reshape, Transpose, ...) on a quantized tensor reuse its
 *    parameters, so onnxruntime drops DQ -> op -> Q and runs them on uint8 (it needs equal params).
 */
import { F32, onnx } from './graph.js';
import { attrFloat, attrInt, dimsOf, type Fail, type GraphIndex, isOp } from './ptq-graph.js';

/** Ops that only move or pick values: their output can carry their input's parameters. */
const SAME_PARAMS = new Set([
  'MaxPool',
  'Flatten',
  'Reshape',
  'Transpose',
  'Squeeze',
  'Unsqueeze',
  'Identity',
  'Dropout',
]);
/** Ops onnxruntime has uint8 kernels for, fused from DQ -> op -> Q. */
const WHOLE = new Set(['Add', 'GlobalAveragePool', 'AveragePool']);
/** Ops a float stem may see the input through before its convs. */
const LAYOUT = new Set(['Transpose', 'Reshape', 'Identity', 'Squeeze', 'Unsqueeze']);

/** A node whose weight becomes int8. */
export interface QuantLayer {
  node: number;
  /** Whether its bias (input 2, a constant) becomes int32; the weight is always input 1. */
  bias: boolean;
  /** Output-channel axis of the weight, or null for one scale per tensor. */
  axis: number | null;
}

export interface Plan {
  layers: QuantLayer[];
  /** Tensors that get Q -> DQ, in graph order: own range, or the parameters of `share`. */
  acts: Map<string, { share?: string }>;
}

/**
 * Which nodes and tensors to quantize (see the header). `exclude` names nodes kept float;
 * `floatStem` keeps float the convs that read the model input (seen through layout ops).
 */
export function planQuantization(
  ix: GraphIndex,
  input: string,
  opts: { exclude: ReadonlySet<string>; floatStem: boolean },
  fail: Fail,
): Plan {
  const stem = opts.floatStem ? stemConvs(ix, input) : new Set<number>();
  const isAct = (t: string) => t !== '' && !ix.inits.has(t);
  const layers: QuantLayer[] = [];
  for (const [i, n] of ix.nodes.entries()) {
    const op = n.opType ?? '';
    if (!['Conv', 'Gemm', 'MatMul'].some((o) => isOp(n, o)) || opts.exclude.has(n.name ?? '') || stem.has(i))
      continue;
    const [x = '', w = '', b = ''] = n.input ?? [];
    const keep = `keep it float with exclude: ['${n.name ?? ''}']`;
    if (!isAct(x))
      fail(
        `${ix.label(i)}: its first input '${x}' is a constant; only constant weights on input 2 are quantized (${keep})`,
      );
    const wt = ix.inits.get(w);
    if (wt === undefined)
      fail(
        `${ix.label(i)}: weight '${w}' is ${ix.producer.has(w) ? `computed by ${ix.label(ix.producer.get(w)!)}` : 'a graph input'}, not a constant initializer; dynamic weights are not quantized (${keep})`,
      );
    if (wt.dataType !== F32)
      fail(`${ix.label(i)}: weight '${w}' is ${onnx.TensorProto.DataType[wt.dataType ?? 0]}, expected FLOAT`);
    const rank = dimsOf(wt).length;
    let axis: number | null = 0;
    let bias = b !== '' && ix.inits.get(b)?.dataType === F32;
    if (op === 'Gemm') {
      if (rank !== 2) fail(`${ix.label(i)}: weight '${w}' has rank ${rank}, expected 2`);
      axis = attrInt(n, 'transB', 0) === 1 ? 0 : 1;
      const n1 = dimsOf(wt)[axis]!;
      const c = ix.inits.get(b);
      // An int32 bias is added in units of input scale x weight scale: only exact when C is added
      // once (alpha = beta = 1) as one value per output.
      bias &&=
        attrFloat(n, 'alpha', 1) === 1 &&
        attrFloat(n, 'beta', 1) === 1 &&
        c !== undefined &&
        dimsOf(c).reduce((a, d) => a * d, 1) === n1 &&
        dimsOf(c).at(-1) === n1;
    } else if (op === 'MatMul') {
      if (rank < 2) fail(`${ix.label(i)}: weight '${w}' has rank ${rank}, expected at least 2`);
      // A batched [.., K, N] weight gets one scale: per-column scales of QLinearMatMul are 2-D only.
      axis = rank === 2 ? 1 : null;
      bias = false;
    } else if (rank < 3) fail(`${ix.label(i)}: weight '${w}' has rank ${rank}, expected [M, C/group, k...]`);
    layers.push({ node: i, bias, axis });
  }

  const acts = new Map<string, { share?: string }>();
  const own = (t: string) => {
    if (!acts.has(t)) acts.set(t, {});
  };
  /** Whether `t` only reaches graph outputs (through same-parameter ops), or nothing. */
  const toOutputsOnly = (t: string): boolean =>
    ix.consumersOf(t).every((c) => SAME_PARAMS.has(c.opType ?? '') && toOutputsOnly(c.output?.[0] ?? ''));
  /** Q -> DQ after a quantized op's output `t` (see the header for the Relu and output cases). */
  const output = (t: string) => {
    if (!t || toOutputsOnly(t)) return;
    const cons = ix.consumersOf(t);
    if (!ix.outputs.has(t) && cons.length > 0 && cons.every((c) => isOp(c, 'Relu'))) {
      for (const r of cons) if (!toOutputsOnly(r.output?.[0] ?? '')) own(r.output![0]!);
    } else own(t);
  };
  for (const l of layers) {
    const n = ix.nodes[l.node]!;
    own(n.input![0]!);
    output(n.output?.[0] ?? '');
  }
  for (const n of ix.nodes) {
    if (opts.exclude.has(n.name ?? '')) continue;
    const ins = (n.input ?? []).filter(Boolean);
    const out = n.output?.[0] ?? '';
    if (
      WHOLE.has(n.opType ?? '') &&
      isOp(n, n.opType ?? '') &&
      ins.every(isAct) &&
      ins.some((t) => acts.has(t))
    ) {
      for (const t of ins) own(t);
      output(out);
    } else if (
      SAME_PARAMS.has(n.opType ?? '') &&
      isOp(n, n.opType ?? '') &&
      acts.has(ins[0] ?? '') &&
      !ix.outputs.has(out) &&
      !toOutputsOnly(out)
    )
      acts.set(out, { share: ins[0]! });
  }
  return { layers, acts };
}

/**
 * The convs that read the model input, seen through layout ops, when nothing else reads it: the
 * exporter's float stem (export/onnx.ts), since onnxruntime's int8 conv over a few input channels
 * is slower than its float one (ResNet-8's stem on 28x28x1 at batch 64: 2.5 ms int8, 0.4 ms fp32).
 */
function stemConvs(ix: GraphIndex, input: string): Set<number> {
  const convs = new Set<number>();
  const seen = new Set<string>();
  const todo = [input];
  while (todo.length > 0) {
    const t = todo.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    for (const i of ix.consumers.get(t) ?? []) {
      const n = ix.nodes[i]!;
      if (isOp(n, 'Conv') && n.input?.[0] === t) convs.add(i);
      else if (LAYOUT.has(n.opType ?? '') && isOp(n, n.opType ?? '') && n.input?.[0] === t)
        todo.push(n.output?.[0] ?? '');
      else return new Set();
    }
  }
  return convs;
}
