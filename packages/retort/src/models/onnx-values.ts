/**
 * Reading an ONNX graph's constants and node attributes (for onnx-import.ts): initializers and
 * Constant nodes as float arrays, integer attributes as numbers. protobuf decodes int64 fields as
 * Long objects and keeps tensor payloads either in raw_data (little-endian bytes) or in the typed
 * repeated fields, depending on the exporter; both are read here.
 */
import type { onnx as O } from 'onnx-proto';
import { RetortError } from '../util/errors.js';

/** A constant tensor of the graph: values as float64 (weights, shapes and pads alike) and dims. */
export interface ConstValue {
  data: Float64Array;
  dims: number[];
}

/** ONNX TensorProto.DataType codes read here. */
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
const DOUBLE = 11;

/** A protobuf int64 (Long or number) as a JS number. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v !== null && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return Number(v);
}

/** The values of `t` (float, double, int32 or int64), checked against its dims. */
export function tensorValues(t: O.ITensorProto, file: string): ConstValue {
  const dims = (t.dims ?? []).map(num);
  const where = `${file}: tensor '${t.name ?? ''}'`;
  if (dims.some((d) => !Number.isInteger(d) || d < 0 || d > 2 ** 31))
    throw new RetortError(`${where} has dims [${dims.join(', ')}]`, { file });
  const count = dims.reduce((a, b) => a * b, 1);
  if (t.dataLocation === 1)
    throw new RetortError(
      `${where} keeps its data in an external file, which is not read (save the model with its weights inside)`,
      { file },
    );
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  const type = t.dataType ?? 0;
  const width = type === FLOAT || type === INT32 ? 4 : type === INT64 || type === DOUBLE ? 8 : 0;
  if (width === 0)
    throw new RetortError(`${where} has data type ${type}, expected float, double, int32 or int64`, { file });
  if (raw && raw.length !== count * width)
    throw new RetortError(`${where}: ${raw.length} bytes of data for dims [${dims.join(', ')}]`, { file });
  const list: ArrayLike<unknown> =
    type === FLOAT
      ? (t.floatData ?? [])
      : type === INT32
        ? (t.int32Data ?? [])
        : type === DOUBLE
          ? (t.doubleData ?? [])
          : (t.int64Data ?? []);
  // Checked before anything is allocated: the counts a file claims are bounded by what it holds.
  if (!raw && list.length !== count)
    throw new RetortError(`${where}: ${list.length} values for dims [${dims.join(', ')}]`, { file });
  const data = new Float64Array(count);
  if (raw) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < count; i++) {
      const o = i * width;
      data[i] =
        type === FLOAT
          ? view.getFloat32(o, true)
          : type === INT32
            ? view.getInt32(o, true)
            : type === DOUBLE
              ? view.getFloat64(o, true)
              : Number(view.getBigInt64(o, true));
    }
    return { data, dims };
  }
  for (let i = 0; i < count; i++) data[i] = num(list[i]);
  return { data, dims };
}

/** Typed access to one node's attributes, with defaults. */
export class Attrs {
  private readonly byName = new Map<string, O.IAttributeProto>();

  constructor(node: O.INodeProto) {
    for (const a of node.attribute ?? []) if (a.name) this.byName.set(a.name, a);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  int(name: string, dflt: number): number {
    const a = this.byName.get(name);
    return a ? num(a.i) : dflt;
  }

  float(name: string, dflt: number): number {
    const a = this.byName.get(name);
    return a ? (a.f ?? dflt) : dflt;
  }

  ints(name: string, dflt: number[]): number[] {
    const a = this.byName.get(name);
    return a ? (a.ints ?? []).map(num) : dflt;
  }

  str(name: string, dflt: string): string {
    const a = this.byName.get(name);
    return a?.s ? new TextDecoder().decode(a.s) : dflt;
  }

  tensor(name: string): O.ITensorProto | undefined {
    return this.byName.get(name)?.t ?? undefined;
  }
}
