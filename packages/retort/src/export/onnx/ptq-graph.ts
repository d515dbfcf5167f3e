/**
 * Graph helpers for post-training int8 of an existing ONNX model (ptq.ts): an index of producers
 * and consumers, reading float initializers, and batch-norm folding.
 */
import type { onnx as O } from 'onnx-proto';
import { F32, onnx } from './graph.js';

export type Fail = (message: string) => never;

/** Producers, consumers, initializers and graph outputs of one graph (rebuilt after edits). */
export class GraphIndex {
  readonly nodes: O.INodeProto[];
  readonly inits = new Map<string, O.ITensorProto>();
  readonly producer = new Map<string, number>();
  readonly consumers = new Map<string, number[]>();
  readonly outputs: Set<string>;

  constructor(readonly graph: O.IGraphProto) {
    this.nodes = graph.node ?? [];
    for (const t of graph.initializer ?? []) this.inits.set(t.name ?? '', t);
    for (const [i, n] of this.nodes.entries()) {
      for (const o of n.output ?? []) if (o) this.producer.set(o, i);
      for (const x of n.input ?? []) {
        if (!x) continue;
        const list = this.consumers.get(x) ?? [];
        if (!list.includes(i)) list.push(i);
        this.consumers.set(x, list);
      }
    }
    this.outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''));
  }

  /** How errors name node `i`: its op and name (or its index when unnamed). */
  label(i: number): string {
    const n = this.nodes[i]!;
    return `${n.opType} '${n.name || `#${i}`}'`;
  }

  consumersOf(t: string): O.INodeProto[] {
    return (this.consumers.get(t) ?? []).map((i) => this.nodes[i]!);
  }
}

/** Whether node `n` is the standard-domain op `op`. */
export function isOp(n: O.INodeProto, op: string): boolean {
  const d = n.domain ?? '';
  return n.opType === op && (d === '' || d === 'ai.onnx');
}

export function attrInt(n: O.INodeProto, name: string, def: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a?.i === undefined || a.i === null ? def : Number(a.i);
}

export function attrFloat(n: O.INodeProto, name: string, def: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a?.f === undefined || a.f === null ? def : a.f;
}

export function dimsOf(t: O.ITensorProto): number[] {
  return (t.dims ?? []).map(Number);
}

/** A float32 initializer's values (raw little-endian bytes or float_data); fails on other types. */
export function readFloat(t: O.ITensorProto, where: string, fail: Fail): Float32Array {
  if (t.dataType !== F32)
    fail(
      `${where}: initializer '${t.name}' is ${onnx.TensorProto.DataType[t.dataType ?? 0]}, expected FLOAT`,
    );
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)
    fail(
      `${where}: initializer '${t.name}' is stored as external data; load the model with its data inlined`,
    );
  const n = dimsOf(t).reduce((a, b) => a * b, 1);
  let data: Float32Array;
  if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== 4 * n)
      fail(`${where}: initializer '${t.name}' holds ${t.rawData.length} bytes for ${n} floats`);
    // Copied: the decoded bytes are a view (a Node Buffer's slice does not copy), maybe unaligned.
    const copy = new Uint8Array(t.rawData.length);
    copy.set(t.rawData);
    data = new Float32Array(copy.buffer);
  } else data = Float32Array.from(t.floatData ?? []);
  if (data.length !== n) fail(`${where}: initializer '${t.name}' holds ${data.length} values for ${n}`);
  return data;
}

export function floatInit(name: string, data: Float32Array, dims: number[]): O.ITensorProto {
  return { name, dataType: F32, dims, rawData: new Uint8Array(data.buffer.slice(0)) };
}

/**
 * Folds each BatchNormalization (inference mode, constant parameters) into the Conv before it when
 * the Conv's output feeds nothing else: W' = W * s, b' = (b - mean) * s + beta per output channel,
 * s = gamma / sqrt(var + eps). The Conv takes the BN's output name, so names downstream stay.
 * onnxruntime's Python quantizer gets the same from its pre-processing; a BN left between a
 * quantized conv and its ReLU would cost a float round trip per layer. Returns the folds made.
 */
export function foldBatchNorms(graph: O.IGraphProto, used: Set<string>, fail: Fail): number {
  const ix = new GraphIndex(graph);
  const drop = new Set<number>();
  const newInits: O.ITensorProto[] = [];
  const replaced = new Set<string>();
  for (const [i, bn] of ix.nodes.entries()) {
    if (!isOp(bn, 'BatchNormalization') || (bn.output ?? []).filter(Boolean).length !== 1) continue;
    if (attrInt(bn, 'training_mode', 0) !== 0) continue;
    const x = bn.input?.[0] ?? '';
    const ci = ix.producer.get(x);
    if (ci === undefined || ix.outputs.has(x) || (ix.consumers.get(x) ?? []).length !== 1) continue;
    const conv = ix.nodes[ci]!;
    const params = (bn.input ?? []).slice(1, 5).map((p) => ix.inits.get(p));
    const w = ix.inits.get(conv.input?.[1] ?? '');
    const b = conv.input?.[2] ? ix.inits.get(conv.input[2]) : undefined;
    if (!isOp(conv, 'Conv') || !w || params.length !== 4 || params.some((p) => p === undefined)) continue;
    if (conv.input?.[2] && !b) continue;
    const where = `${ix.label(i)} (folded into ${ix.label(ci)})`;
    const [gamma, beta, mean, variance] = params.map((p) => readFloat(p!, where, fail)) as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    const wd = dimsOf(w);
    const m = wd[0]!;
    if ([gamma, beta, mean, variance].some((p) => p.length !== m))
      fail(`${where}: parameters of length ${gamma.length}, the conv has ${m} output channels`);
    const eps = attrFloat(bn, 'epsilon', 1e-5);
    const s = Float32Array.from(gamma, (g, j) => g / Math.sqrt(variance[j]! + eps));
    const wf = readFloat(w, where, fail);
    const inner = wf.length / m;
    const bias0 = b ? readFloat(b, where, fail) : new Float32Array(m);
    const name = (base: string) => {
      let n = base;
      for (let k = 1; used.has(n); k++) n = `${base}_${k}`;
      used.add(n);
      return n;
    };
    const wName = name(`${w.name}_bnfold`);
    const bName = name(`${b?.name ?? `${conv.name || w.name}.bias`}_bnfold`);
    newInits.push(
      floatInit(
        wName,
        Float32Array.from(wf, (v, k) => v * s[Math.floor(k / inner)]!),
        wd,
      ),
      floatInit(
        bName,
        Float32Array.from(s, (sj, j) => (bias0[j]! - mean[j]!) * sj + beta[j]!),
        [m],
      ),
    );
    for (const t of [...(bn.input ?? []).slice(1), ...(conv.input ?? []).slice(1)]) replaced.add(t);
    conv.input = [conv.input![0]!, wName, bName];
    conv.output = [bn.output![0]!];
    drop.add(i);
  }
  graph.node = ix.nodes.filter((_, i) => !drop.has(i));
  // The convs' old output names are gone: shape records of them would describe nothing.
  const gone = new Set([...drop].map((i) => ix.nodes[i]!.input![0]!));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => !gone.has(v.name ?? ''));
  graph.initializer = [...(graph.initializer ?? []), ...newInits];
  pruneInits(graph, replaced);
  return drop.size;
}

/**
 * Drops the initializers among `replaced` that no node reads any more (and their graph-input
 * entries); others stay, even unread, as the user wrote them.
 */
export function pruneInits(graph: O.IGraphProto, replaced: ReadonlySet<string>): void {
  const read = new Set((graph.node ?? []).flatMap((n) => n.input ?? []));
  for (const o of graph.output ?? []) read.add(o.name ?? '');
  const gone = new Set([...replaced].filter((n) => !read.has(n)));
  graph.initializer = (graph.initializer ?? []).filter((t) => !gone.has(t.name ?? ''));
  graph.input = (graph.input ?? []).filter((v) => !gone.has(v.name ?? ''));
}
