/**
 * Case generators of the kernel fuzzer (run.ts): for every kernel the native backend registers, a
 * function that draws one call (inputs with their values, attributes) from a seeded generator. Most
 * calls are valid ones of varied rank and size (size-1 and empty dims, broadcasting, strides,
 * dilations, paddings, transposes, negative axes, NaN and infinities in the data); about one in
 * five is hostile: a generic mutation of a valid call (a dim, a rank, a dtype or an attribute
 * replaced by a bad value, an input left out) or one the kernel's own generator knows (indices out
 * of range, inconsistent gradient shapes). Every call goes through `engine().runKernel`, below the
 * ops' own argument checks, so the kernels see what a buggy caller could send them.
 */
import { backend_util } from '@tensorflow/tfjs-core';
import { unaryKernels } from '../../src/kernels/unary.js';

export type DType = 'float32' | 'int32';

export interface TensorSpec {
  shape: number[];
  dtype: DType;
  values: Float32Array | Int32Array;
}

export interface FuzzCase {
  /** Named inputs, or a list (AddN). */
  inputs: Record<string, TensorSpec> | TensorSpec[];
  attrs: Record<string, unknown>;
  hostile: boolean;
  /** What the generic mutation changed (for the report). */
  note?: string;
}

export interface KernelFuzzer {
  name: string;
  /** A valid call (mostly: random geometry can still be rejected by both backends). */
  gen(r: Rng): FuzzCase;
  /** Kernel-specific hostile variants of a valid call; the generic mutations serve the rest. */
  bad?(r: Rng, c: FuzzCase): FuzzCase;
  /** Bad numbers the generic mutation may put in attributes (default BAD_NUMBERS). */
  badNumbers?: readonly number[];
  /**
   * Why a disagreement with cpu is no finding for this call (cpu is no reference there), or null.
   * `ref` and `got` are the outputs when both backends returned.
   */
  excuse?(c: FuzzCase, ref?: Output[], got?: Output[]): string | null;
}

/** One output of a kernel call, read back. */
export interface Output {
  shape: number[];
  dtype: string;
  values: Float32Array | Int32Array | Uint8Array;
}

/** mulberry32: small, fast and seedable; one generator per case. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** The generator of case `i` of `kernel`: same seed, same case, whatever ran before it. */
export function caseRng(seed: number, kernel: string, i: number): Rng {
  let h = 0x811c9dc5 ^ seed;
  for (let k = 0; k < kernel.length; k++) h = Math.imul(h ^ kernel.charCodeAt(k), 0x01000193);
  return new Rng(Math.imul(h ^ i, 0x9e3779b1) ^ (i * 0x85ebca6b));
}

/** Share of hostile cases. */
export const HOSTILE_SHARE = 0.2;

/** Draws case `i` of `f`: valid, or (HOSTILE_SHARE of the time) hostile. */
export function drawCase(f: KernelFuzzer, seed: number, i: number): FuzzCase {
  const r = caseRng(seed, f.name, i);
  const hostile = r.chance(HOSTILE_SHARE);
  const c = f.gen(r);
  if (!hostile) return c;
  const m = f.bad !== undefined && r.chance(0.5) ? f.bad(r, c) : mutate(r, c, f.badNumbers);
  return { ...m, hostile: true };
}

// ---------------------------------------------------------------------------------------------------
// Shapes and values

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A dim: sometimes 0 or 1, mostly small, now and then larger. */
function dim(r: Rng, max = 6): number {
  const u = r.next();
  if (u < 0.03) return 0;
  if (u < 0.22) return 1;
  if (u < 0.92) return r.range(2, max);
  return r.range(max + 1, max * 4);
}

/** Halves the largest dims until the shape holds at most `cap` elements. */
function cap(shape: number[], limit: number): number[] {
  const s = shape.slice();
  while (size(s) > limit) {
    let at = 0;
    for (let i = 1; i < s.length; i++) if (s[i]! > s[at]!) at = i;
    s[at] = Math.floor(s[at]! / 2);
  }
  return s;
}

function randShape(r: Rng, rank: number, max = 6, limit = 4096): number[] {
  return cap(
    Array.from({ length: rank }, () => dim(r, max)),
    limit,
  );
}

/** Non-finite values and signed zeros: every kernel gets them. */
const SPECIAL = [Number.NaN, Infinity, -Infinity, 0, -0];
/** Also huge and subnormal values: only for kernels without sums (cancellation is order-dependent). */
const WIDE = [...SPECIAL, 1e30, -1e30, 3e38, -3e38, 1e-40, -1e-40, 1e-30];

interface ValueOpts {
  lo?: number;
  hi?: number;
  /** Values sprinkled now and then (default SPECIAL); [] for none. */
  specials?: readonly number[];
}

function values(r: Rng, n: number, o: ValueOpts = {}): Float32Array {
  const lo = o.lo ?? -2;
  const hi = o.hi ?? 2;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r.next();
  // Whole numbers make ties (max pooling, argMax, Max/Min).
  if (r.chance(0.1)) for (let i = 0; i < n; i++) a[i] = Math.round(a[i]!);
  const sp = o.specials ?? SPECIAL;
  if (sp.length > 0 && n > 0 && r.chance(0.15)) {
    const k = 1 + r.int(Math.max(1, n >> 3));
    for (let j = 0; j < k; j++) a[r.int(n)] = r.pick(sp);
  }
  return a;
}

function f32(r: Rng, shape: number[], o: ValueOpts = {}): TensorSpec {
  return { shape, dtype: 'float32', values: values(r, size(shape), o) };
}

function i32(r: Rng, shape: number[], lo: number, hi: number): TensorSpec {
  const n = size(shape);
  const v = new Int32Array(n);
  for (let i = 0; i < n; i++) v[i] = r.range(lo, hi);
  return { shape, dtype: 'int32', values: v };
}

function permutation(r: Rng, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** An axis of a rank-`rank` tensor, negative half of the time. */
function axisOf(r: Rng, rank: number): number {
  const a = r.int(Math.max(1, rank));
  return r.chance(0.5) ? a - rank : a;
}

// ---------------------------------------------------------------------------------------------------
// Hostile mutations

/** Bad numbers: negative, zero, fractional, non-finite, past int32 (wrapping when packed), huge. */
const BAD_NUMBERS = [-1, -3, 0, 0.5, 2.5, Number.NaN, Infinity, -(2 ** 31), 2 ** 31, 2 ** 32 + 1, 1e10];
/**
 * The bad numbers for attributes that size tfjs cpu's loops (filter sizes, strides, paddings, reps,
 * segment counts): a huge one keeps cpu busy for minutes without an error, so only those that fail
 * fast. The kernels' own hostile variants put huge values where the output size makes cpu fail.
 */
const LOOP_BAD_NUMBERS = [-1, -3, 0, 0.5, 2.5, Number.NaN, -(2 ** 31)];
/** For conv and pool geometry: a zero stride or a window of -2^31 also keeps cpu looping. */
const GEOMETRY_BAD_NUMBERS = [-1, -3, 0.5, 2.5, Number.NaN];

function mutateTensor(r: Rng, t: TensorSpec): TensorSpec {
  const shape = t.shape.slice();
  switch (r.int(4)) {
    case 0: {
      // one dim changed
      if (shape.length === 0) shape.push(r.range(0, 3));
      else {
        const i = r.int(shape.length);
        shape[i] = r.pick([0, 1, Math.max(0, shape[i]! - 1), shape[i]! + 1, shape[i]! * 2 + 1]);
      }
      break;
    }
    case 1:
      // rank changed
      if (shape.length > 0 && r.chance(0.5)) shape.pop();
      else shape.splice(r.int(shape.length + 1), 0, r.range(1, 3));
      break;
    case 2:
      // dtype changed (the native kernels are float32 only; int32 indices become float32)
      if (t.dtype === 'float32')
        return {
          shape,
          dtype: 'int32',
          values: Int32Array.from(t.values, (v) => (Number.isFinite(v) ? v : 0)),
        };
      return { shape, dtype: 'float32', values: Float32Array.from(t.values) };
    default:
      // rank 7 and beyond
      while (shape.length < 7) shape.unshift(1);
      shape.unshift(r.range(1, 2));
  }
  const capped = cap(shape, 1 << 16);
  return t.dtype === 'int32'
    ? i32(r, capped, -1, 4)
    : { shape: capped, dtype: 'float32', values: values(r, size(capped)) };
}

type Path = (string | number)[];

/** Paths to the numeric, string and boolean leaves of the attributes. */
function leaves(v: unknown, path: Path, out: Path[]): void {
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) leaves(x, [...path, i], out);
  } else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) leaves(x, [...path, k], out);
  else if (path.length > 0) out.push(path);
}

function setAt(root: Record<string, unknown>, path: Path, value: unknown): void {
  let o = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string | number, unknown>;
  o[path[path.length - 1]!] = value;
}

function getAt(root: Record<string, unknown>, path: Path): unknown {
  let o: unknown = root;
  for (const k of path) o = (o as Record<string | number, unknown>)[k];
  return o;
}

/** One or two generic hostile changes to a valid call. */
export function mutate(r: Rng, c: FuzzCase, bad: readonly number[] = BAD_NUMBERS): FuzzCase {
  const attrs = structuredClone(c.attrs);
  let inputs: FuzzCase['inputs'] = Array.isArray(c.inputs) ? c.inputs.slice() : { ...c.inputs };
  const times = r.chance(0.3) ? 2 : 1;
  const notes: string[] = [];
  for (let t = 0; t < times; t++) {
    const names: (string | number)[] = Array.isArray(inputs) ? inputs.map((_, i) => i) : Object.keys(inputs);
    const paths: Path[] = [];
    leaves(attrs, [], paths);
    const u = r.int(10);
    if (u < 4 && paths.length > 0) {
      const p = r.pick(paths);
      const old = getAt(attrs, p);
      setAt(attrs, p, typeof old === 'string' ? r.pick(['bogus', '', 'NCHW', 'same']) : r.pick(bad));
      notes.push(`attr ${p.join('.')} changed`);
    } else if (u < 5 && Object.keys(attrs).length > 0) {
      const k = r.pick(Object.keys(attrs));
      const v = attrs[k];
      if (Array.isArray(v) && r.chance(0.7)) {
        if (v.length > 0 && r.chance(0.5)) v.pop();
        else v.push(r.pick([1, 0, -1]));
        notes.push(`attr ${k} resized`);
      } else {
        delete attrs[k];
        notes.push(`attr ${k} left out`);
      }
    } else if (u < 9 && names.length > 0) {
      const k = r.pick(names);
      const old = (inputs as Record<string | number, TensorSpec>)[k]!;
      (inputs as Record<string | number, TensorSpec>)[k] = mutateTensor(r, old);
      notes.push(`input ${k} changed`);
    } else if (names.length > 0) {
      const k = r.pick(names);
      if (Array.isArray(inputs)) inputs = inputs.filter((_, i) => i !== k);
      else delete inputs[k as string];
      notes.push(`input ${k} left out`);
    }
  }
  return { inputs, attrs, hostile: true, note: notes.join(', ') };
}

// ---------------------------------------------------------------------------------------------------
// Kernels

// The names the backend registers natively, so a unary kernel added there is fuzzed too.
const unaryNames = unaryKernels.map((k) => k.kernelName);

function unary(name: string): KernelFuzzer {
  return {
    name,
    gen(r) {
      const x = f32(r, randShape(r, r.range(0, 5), 8), { lo: -6, hi: 6, specials: WIDE });
      const attrs: Record<string, unknown> = {};
      if (name === 'Step' || name === 'LeakyRelu') attrs['alpha'] = r.pick([0, 0.2, 1, -1, 0.01, 3.5]);
      return { inputs: { x }, attrs, hostile: false };
    },
  };
}

const binaryNames = ['Add', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'SquaredDifference', 'Pow'];

/** Two shapes that broadcast to one of rank <= 6 (rarely 7, which native leaves to JS). */
function broadcastPair(r: Rng): [number[], number[]] {
  const rank = r.chance(0.03) ? 7 : r.range(0, 6);
  const out = randShape(r, rank, 5, 2048);
  const side = () => {
    const keep = r.range(0, rank);
    return out.slice(rank - keep).map((d) => (r.chance(0.3) ? 1 : d));
  };
  return [side(), side()];
}

function binary(name: string): KernelFuzzer {
  return {
    name,
    gen(r) {
      const [sa, sb] = broadcastPair(r);
      const o = name === 'Pow' ? { lo: -3, hi: 3, specials: WIDE } : { lo: -4, hi: 4, specials: WIDE };
      const a = f32(r, sa, o);
      const b = f32(r, sb, o);
      // Pow: whole exponents give negative bases a real answer.
      if (name === 'Pow' && r.chance(0.5))
        for (let i = 0; i < b.values.length; i++) b.values[i] = Math.round(b.values[i]!);
      return { inputs: { a, b }, attrs: {}, hostile: false };
    },
    bad(r, c) {
      // Shapes that do not broadcast.
      const a = (c.inputs as Record<string, TensorSpec>)['a']!;
      const shape = a.shape.length === 0 ? [3] : a.shape.map((d) => d + 2);
      return { inputs: { a, b: f32(r, shape) }, attrs: {}, hostile: true };
    },
  };
}

const addN: KernelFuzzer = {
  name: 'AddN',
  gen(r) {
    const shape = randShape(r, r.range(0, 4), 6, 1024);
    const k = r.chance(0.2) ? r.range(31, 70) : r.range(1, 6);
    return { inputs: Array.from({ length: k }, () => f32(r, shape)), attrs: {}, hostile: false };
  },
  bad(r, c) {
    const xs = (c.inputs as TensorSpec[]).slice();
    if (r.chance(0.3)) return { inputs: [], attrs: {}, hostile: true };
    const i = r.int(xs.length);
    xs[i] = mutateTensor(r, xs[i]!);
    return { inputs: xs, attrs: {}, hostile: true };
  },
};

const fusedBatchNorm: KernelFuzzer = {
  name: 'FusedBatchNorm',
  gen(r) {
    const xs = randShape(r, r.range(1, 4), 6, 2048);
    const c = xs[xs.length - 1]!;
    // tfjs cpu wants every parameter of one rank; it cycles through each one's values.
    const rank = r.pick([1, 1, 0, xs.length]);
    const forms =
      rank === 0
        ? [[]]
        : rank === 1
          ? [[c], [c], [1], [Math.max(1, c >> 1)]]
          : [xs, xs.map((d, i) => (i === xs.length - 1 ? d : 1)), xs.map(() => 1)];
    const param = (positive: boolean): TensorSpec =>
      f32(r, r.pick(forms).slice(), positive ? { lo: 0, hi: 2 } : {});
    const inputs: Record<string, TensorSpec> = { x: f32(r, xs), mean: param(false), variance: param(true) };
    if (r.chance(0.7)) inputs['offset'] = param(false);
    if (r.chance(0.7)) inputs['scale'] = param(false);
    return { inputs, attrs: { varianceEpsilon: r.pick([0.001, 1e-5, 0, 0.1]) }, hostile: false };
  },
};

function reduce(name: string): KernelFuzzer {
  const axisAttr = name === 'Max' ? 'reductionIndices' : 'axis';
  const opts: ValueOpts =
    name === 'Prod' ? { lo: -1.5, hi: 1.5 } : name === 'Max' || name === 'Min' ? { specials: WIDE } : {};
  return {
    name,
    gen(r) {
      const rank = r.range(0, 5);
      const x = f32(r, randShape(r, rank, 8, 8192), opts);
      let axis: unknown;
      const u = r.int(5);
      if (u === 0) axis = null;
      else if (u === 1) axis = axisOf(r, rank);
      else {
        const k = r.range(0, rank);
        axis = permutation(r, rank)
          .slice(0, k)
          .map((a) => (r.chance(0.3) ? a - rank : a));
        // A repeated axis (native leaves those to JS).
        if (r.chance(0.05) && rank > 0) (axis as number[]).push((axis as number[])[0] ?? 0);
      }
      return { inputs: { x }, attrs: { [axisAttr]: axis, keepDims: r.chance(0.5) }, hostile: false };
    },
    bad(r, c) {
      const x = (c.inputs as Record<string, TensorSpec>)['x']!;
      const rank = x.shape.length;
      const axis = r.pick([rank, -rank - 1, rank + 3, 2 ** 31, -(2 ** 31), 1.5, Number.NaN]);
      return { inputs: { x }, attrs: { [axisAttr]: r.chance(0.5) ? axis : [0, axis] }, hostile: true };
    },
  };
}

const transpose: KernelFuzzer = {
  name: 'Transpose',
  gen(r) {
    const rank = r.range(0, 6);
    return {
      inputs: { x: f32(r, randShape(r, rank, 6, 8192), { specials: WIDE }) },
      attrs: { perm: permutation(r, rank) },
      hostile: false,
    };
  },
  bad(r, c) {
    const x = (c.inputs as Record<string, TensorSpec>)['x']!;
    const perm = permutation(r, x.shape.length);
    if (perm.length > 0 && r.chance(0.5)) perm[r.int(perm.length)] = r.pick([perm[0]!, -1, perm.length, 99]);
    else perm.push(perm.length);
    return { inputs: { x }, attrs: { perm }, hostile: true };
  },
};

const softmax: KernelFuzzer = {
  name: 'Softmax',
  gen(r) {
    const rank = r.range(1, 4);
    const logits = f32(r, randShape(r, rank, 10, 4096), { lo: -10, hi: 10 });
    return { inputs: { logits }, attrs: { dim: r.chance(0.5) ? -1 : rank - 1 }, hostile: false };
  },
  bad(r, c) {
    const logits = (c.inputs as Record<string, TensorSpec>)['logits']!;
    return { inputs: { logits }, attrs: { dim: r.pick([0, -2, logits.shape.length, 7]) }, hostile: true };
  },
};

const argMax: KernelFuzzer = {
  name: 'ArgMax',
  gen(r) {
    const rank = r.range(1, 4);
    const x = f32(r, randShape(r, rank, 8, 4096), { specials: WIDE });
    const a = axisOf(r, rank);
    return { inputs: { x }, attrs: { axis: r.chance(0.3) ? [a] : a }, hostile: false };
  },
  bad(r, c) {
    const x = (c.inputs as Record<string, TensorSpec>)['x']!;
    const rank = x.shape.length;
    return { inputs: { x }, attrs: { axis: r.pick([rank, -rank - 1, 2 ** 31, 1.5]) }, hostile: true };
  },
};

const slice: KernelFuzzer = {
  name: 'Slice',
  gen(r) {
    const rank = r.range(1, 6);
    const shape = randShape(r, rank, 6, 8192);
    const begin = shape.map((d) => r.range(0, Math.max(0, d - 1)));
    const sz = shape.map((d, i) => {
      const u = r.next();
      return u < 0.15 ? -1 : u < 0.18 ? 0 : r.range(Math.min(1, d - begin[i]!), d - begin[i]!);
    });
    return {
      inputs: { x: f32(r, shape, { specials: WIDE }) },
      attrs: { begin, size: sz },
      hostile: false,
    };
  },
  bad(r, c) {
    const x = (c.inputs as Record<string, TensorSpec>)['x']!;
    const begin = x.shape.map((d) => r.range(0, d));
    const sz = x.shape.map((d, i) => d - begin[i]!);
    const i = r.int(x.shape.length);
    if (r.chance(0.5)) begin[i] = r.pick([-1, x.shape[i]! + 1, 2 ** 31 - 1, -(2 ** 31)]);
    else sz[i] = r.pick([-2, sz[i]! + 1, 2 ** 31 - 1, 2 ** 31]);
    return { inputs: { x }, attrs: { begin, size: sz }, hostile: true };
  },
};

const splitV: KernelFuzzer = {
  name: 'SplitV',
  gen(r) {
    const rank = r.range(1, 6);
    const shape = randShape(r, rank, 6, 8192);
    const axis = r.int(rank);
    const d = shape[axis]!;
    // A count that divides the axis, a list of sizes (one may be -1: the rest), or a zero piece.
    const pieces = r.range(1, Math.max(1, d));
    let split: number | number[];
    const u = r.next();
    if (u < 0.3 && d % pieces === 0) split = pieces;
    else {
      const sizes: number[] = [];
      let left = d;
      while (left > 0) {
        const s = r.range(1, left);
        sizes.push(s);
        left -= s;
      }
      if (u > 0.9) sizes.push(0);
      if (u > 0.8 && u <= 0.9 && sizes.length > 1) sizes[r.int(sizes.length)] = -1;
      split = sizes;
    }
    return {
      inputs: { x: f32(r, shape, { specials: WIDE }) },
      attrs: { numOrSizeSplits: split, axis: r.chance(0.2) ? axis - rank : axis },
      hostile: false,
    };
  },
};

const concat: KernelFuzzer = {
  name: 'Concat',
  gen(r) {
    const rank = r.range(1, 6);
    const shape = randShape(r, rank, 6, 4096);
    const axis = r.int(rank);
    const n = r.range(1, 4);
    const xs: TensorSpec[] = [];
    for (let i = 0; i < n; i++) {
      const s = [...shape];
      // Sizes along the axis differ; now and then one is 0, or another dimension disagrees.
      s[axis] = r.chance(0.1) ? 0 : r.range(1, 6);
      if (r.chance(0.03) && rank > 1) s[(axis + 1) % rank] = s[(axis + 1) % rank]! + 1;
      xs.push(f32(r, s, { specials: WIDE }));
    }
    return { inputs: xs, attrs: { axis: r.chance(0.2) ? axis - rank : axis }, hostile: false };
  },
};

const padV2: KernelFuzzer = {
  name: 'PadV2',
  gen(r) {
    const rank = r.range(r.chance(0.05) ? 0 : 1, 6);
    const shape = randShape(r, rank, 5, 2048);
    return {
      inputs: { x: f32(r, shape, { specials: WIDE }) },
      attrs: {
        paddings: shape.map(() => [r.range(0, 3), r.range(0, 3)]),
        constantValue: r.pick([0, 1.5, -2, Number.NaN, Infinity]),
      },
      hostile: false,
    };
  },
  bad(r, c) {
    const x = (c.inputs as Record<string, TensorSpec>)['x']!;
    const paddings = x.shape.map(() => [r.range(0, 2), r.range(0, 2)]);
    if (paddings.length === 0 || r.chance(0.2)) paddings.push([1, 1]);
    else paddings[r.int(paddings.length)]![r.int(2)] = r.pick([-1, -5, -(2 ** 31), 1e10]);
    return { inputs: { x }, attrs: { paddings, constantValue: 0 }, hostile: true };
  },
  badNumbers: LOOP_BAD_NUMBERS,
};

const tile: KernelFuzzer = {
  name: 'Tile',
  gen(r) {
    const rank = r.range(r.chance(0.05) ? 0 : 1, 6);
    const shape = randShape(r, rank, 4, 512);
    return {
      inputs: { x: f32(r, shape, { specials: WIDE }) },
      attrs: { reps: shape.map(() => (r.chance(0.05) ? 0 : r.range(1, 3))) },
      hostile: false,
    };
  },
  bad(r, c) {
    const x = (c.inputs as Record<string, TensorSpec>)['x']!;
    const reps = x.shape.map(() => 1);
    if (reps.length === 0 || r.chance(0.3)) reps.push(2);
    else reps[r.int(reps.length)] = r.pick([-1, -2, 2 ** 32 + 1, 1e10]);
    return { inputs: { x }, attrs: { reps }, hostile: true };
  },
  badNumbers: LOOP_BAD_NUMBERS,
};

const gatherV2: KernelFuzzer = {
  name: 'GatherV2',
  gen(r) {
    const rank = r.range(1, 4);
    const shape = randShape(r, rank, 6, 4096);
    const axis = axisOf(r, rank);
    const d = shape[axis < 0 ? axis + rank : axis]!;
    const indices = i32(r, randShape(r, r.range(0, 2), 6, 64), 0, Math.max(0, d - 1));
    return {
      inputs: { x: f32(r, shape, { specials: WIDE }), indices },
      attrs: { axis, batchDims: 0 },
      hostile: false,
    };
  },
  bad(r, c) {
    const { x, indices } = c.inputs as Record<string, TensorSpec>;
    const idx = Int32Array.from(indices!.values);
    if (idx.length > 0) idx[r.int(idx.length)] = r.pick([-1, 2 ** 31 - 1, -(2 ** 31), 1000]);
    const attrs = { ...c.attrs };
    if (r.chance(0.3)) attrs['axis'] = r.pick([x!.shape.length, -x!.shape.length - 1]);
    if (r.chance(0.2)) attrs['batchDims'] = r.pick([1, -1, 5]);
    return { inputs: { x: x!, indices: { ...indices!, values: idx } }, attrs, hostile: true };
  },
};

const unsortedSegmentSum: KernelFuzzer = {
  name: 'UnsortedSegmentSum',
  gen(r) {
    const shape = randShape(r, r.range(1, 3), 8, 2048);
    const numSegments = r.range(1, 8);
    const segmentIds = i32(r, [shape[0]!], 0, numSegments - 1);
    return { inputs: { x: f32(r, shape), segmentIds }, attrs: { numSegments }, hostile: false };
  },
  bad(r, c) {
    const { x, segmentIds } = c.inputs as Record<string, TensorSpec>;
    const ids = Int32Array.from(segmentIds!.values);
    const n = c.attrs['numSegments'] as number;
    if (ids.length > 0 && r.chance(0.6)) ids[r.int(ids.length)] = r.pick([-1, n, 2 ** 31 - 1, -(2 ** 31)]);
    // numSegments stays small: tfjs cpu runs one pass per segment.
    const numSegments = r.chance(0.4) ? r.pick([0, -1, 1.5, Number.NaN]) : n;
    return {
      inputs: { x: x!, segmentIds: { ...segmentIds!, values: ids } },
      attrs: { numSegments },
      hostile: true,
    };
  },
  // tfjs cpu multiplies all of x by a 0/1 mask per segment: 0 x Inf = NaN reaches every segment.
  excuse: (c) =>
    Array.from((c.inputs as Record<string, TensorSpec>)['x']?.values ?? []).some((v) => !Number.isFinite(v))
      ? 'x holds NaN or Inf: tfjs cpu masks all of x per segment (0 x Inf = NaN, NaN in every segment)'
      : null,
  badNumbers: LOOP_BAD_NUMBERS,
};

// --- conv family ------------------------------------------------------------------------------------

type Pad = 'valid' | 'same' | number | number[][];

interface ConvDraw {
  x: number[];
  f: number[];
  attrs: Record<string, unknown>;
  /** dy's shape when the geometry is valid, else a guess. */
  dy: number[];
}

function pair(r: Rng, lo: number, hi: number): number | [number, number] {
  return r.chance(0.5) ? r.range(lo, hi) : [r.range(lo, hi), r.range(lo, hi)];
}

/** A conv2d geometry (NHWC, or NCHW for the kernels whose cpu version reads dataFormat). */
function convDraw(r: Rng, depthwise: boolean, withFormat: boolean): ConvDraw {
  const n = r.chance(0.1) ? r.pick([0, 3]) : r.range(1, 2);
  const h = dim(r, 9);
  const w = dim(r, 9);
  const c = r.range(1, 5);
  const kh = r.range(1, 4);
  const kw = r.range(1, 4);
  const oc = r.range(1, depthwise ? 3 : 6);
  // tfjs's ops allow strides > 1 or dilations > 1, not both; the kernels are fed both now and then.
  let strides = pair(r, 1, 3);
  let dilations = r.chance(0.3) ? pair(r, 1, 3) : 1;
  // (tfjs cpu's depthwise kernel refuses both.)
  if ((depthwise || r.chance(0.9)) && dilations !== 1) strides = 1;
  if (depthwise && r.chance(0.5)) dilations = 1;
  const nchw = withFormat && r.chance(0.08);
  const padChoice = r.int(5);
  let pad: Pad;
  if (padChoice === 0) pad = 'valid';
  else if (padChoice === 1) pad = 'same';
  else if (padChoice === 2) pad = r.range(0, 2);
  else {
    const hw = [
      [r.range(0, 2), r.range(0, 2)],
      [r.range(0, 2), r.range(0, 2)],
    ];
    pad = nchw ? [[0, 0], [0, 0], ...hw] : [[0, 0], ...hw, [0, 0]];
  }
  const attrs: Record<string, unknown> = { strides, pad, dilations };
  if (typeof pad === 'number' && r.chance(0.5)) attrs['dimRoundingMode'] = r.pick(['floor', 'round', 'ceil']);
  if (withFormat) attrs['dataFormat'] = nchw ? 'NCHW' : 'NHWC';
  const x = nchw ? [n, c, h, w] : [n, h, w, c];
  const f = [kh, kw, c, oc];
  let dy = [n, 1, 1, depthwise ? c * oc : oc];
  try {
    const info = backend_util.computeConv2DInfo(
      x as [number, number, number, number],
      f as [number, number, number, number],
      strides,
      dilations,
      pad as 'valid',
      attrs['dimRoundingMode'] as 'floor' | undefined,
      depthwise,
      nchw ? 'channelsFirst' : 'channelsLast',
    );
    dy = nchw
      ? [n, info.outChannels, info.outHeight, info.outWidth]
      : [n, info.outHeight, info.outWidth, info.outChannels];
  } catch {
    // an invalid geometry: both backends get the guess and should refuse it
  }
  return { x, f, attrs, dy: dy.map((d) => Math.max(0, d)) };
}

/** dy one step off its geometry, or a filter/x channel count that disagrees. */
function convBad(r: Rng, c: FuzzCase, names: [string, string]): FuzzCase {
  const inputs = { ...(c.inputs as Record<string, TensorSpec>) };
  const k = r.pick(names);
  const t = inputs[k]!;
  const shape = t.shape.slice();
  const i = r.int(Math.max(1, shape.length));
  shape[i] = (shape[i] ?? 1) + r.pick([1, -1, 2]);
  inputs[k] = f32(
    r,
    cap(
      shape.map((d) => Math.max(0, d)),
      1 << 16,
    ),
  );
  return { inputs, attrs: c.attrs, hostile: true };
}

function convFwd(name: string, depthwise: boolean): KernelFuzzer {
  const fused = name === 'FusedConv2D';
  return {
    name,
    gen(r) {
      const g = convDraw(r, depthwise, !depthwise);
      const inputs: Record<string, TensorSpec> = { x: f32(r, g.x), filter: f32(r, g.f) };
      const attrs = { ...g.attrs };
      if (fused) {
        const oc = g.f[3]!;
        if (r.chance(0.7)) inputs['bias'] = f32(r, r.pick([[oc], [oc], [1], []]));
        attrs['activation'] = r.pick([
          'linear',
          'relu',
          'relu',
          'relu6',
          'elu',
          'leakyrelu',
          'sigmoid',
          'prelu',
        ]);
        if (attrs['activation'] === 'leakyrelu') attrs['leakyreluAlpha'] = 0.2;
        if (attrs['activation'] === 'prelu') inputs['preluActivationWeights'] = f32(r, [oc]);
      }
      return { inputs, attrs, hostile: false };
    },
    bad: (r, c) => convBad(r, c, ['x', 'filter']),
    badNumbers: GEOMETRY_BAD_NUMBERS,
    excuse: nanNextToPadding,
  };
}

/**
 * oneDNN convolves zero-padded data, tfjs cpu skips the padding: next to padding a NaN or an
 * infinity in the filter (or dy, or x) gives 0 x Inf = NaN natively and nothing on cpu. Excused when
 * an input holds such a value and every disagreement is a NaN on the native side.
 */
function nanNextToPadding(c: FuzzCase, ref?: Output[], got?: Output[]): string | null {
  if (ref === undefined || got === undefined || ref.length !== got.length) return null;
  const ins = Object.values(c.inputs) as TensorSpec[];
  if (!ins.some((t) => t.values.some((v) => !Number.isFinite(v)))) return null;
  const tol = 1e-4;
  for (let o = 0; o < ref.length; o++) {
    const a = got[o]!.values;
    const b = ref[o]!.values;
    if (a.length !== b.length) return null;
    let scale = 1;
    for (const v of b) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (Number.isNaN(x) || x === y || Math.abs(x - y) <= tol * scale) continue;
      return null;
    }
  }
  return 'an input holds NaN or Inf: oneDNN multiplies the zero padding by it (NaN), tfjs cpu skips the padding';
}

/**
 * tfjs cpu's four conv backprop kernels compute their geometry with the dilations but their loops
 * ignore them (and tfjs's gradients refuse dilations > 1), so cpu is no reference for such calls.
 * Only whole dilations: native leaves fractional or NaN ones to cpu, so those must agree.
 */
function dilatedBackprop(c: FuzzCase): string | null {
  const d = c.attrs['dilations'];
  const ds = Array.isArray(d) ? d : [d ?? 1];
  return ds.every((x) => Number.isInteger(x) && x >= 1) && ds.some((x) => x !== 1)
    ? "dilations != 1 in a backprop kernel: tfjs cpu's loops ignore them"
    : null;
}

function convBackpropInput(name: string, depthwise: boolean): KernelFuzzer {
  return {
    name,
    badNumbers: GEOMETRY_BAD_NUMBERS,
    excuse: (c, ref, got) => dilatedBackprop(c) ?? nanNextToPadding(c, ref, got),
    gen(r) {
      const g = convDraw(r, depthwise, !depthwise);
      return {
        inputs: { dy: f32(r, cap(g.dy, 1 << 16)), filter: f32(r, g.f) },
        attrs: { ...g.attrs, inputShape: g.x },
        hostile: false,
      };
    },
    bad(r, c) {
      if (r.chance(0.5)) return convBad(r, c, ['dy', 'filter']);
      const inputShape = (c.attrs['inputShape'] as number[]).slice();
      inputShape[r.int(4)] = r.pick([0, -1, -(2 ** 31), (inputShape[1] ?? 1) + 1]);
      return { ...c, attrs: { ...c.attrs, inputShape }, hostile: true };
    },
  };
}

function convBackpropFilter(name: string, depthwise: boolean): KernelFuzzer {
  return {
    name,
    badNumbers: GEOMETRY_BAD_NUMBERS,
    excuse: (c, ref, got) => dilatedBackprop(c) ?? nanNextToPadding(c, ref, got),
    gen(r) {
      const g = convDraw(r, depthwise, !depthwise);
      return {
        inputs: { x: f32(r, g.x), dy: f32(r, cap(g.dy, 1 << 16)) },
        attrs: { ...g.attrs, filterShape: g.f },
        hostile: false,
      };
    },
    bad(r, c) {
      if (r.chance(0.5)) return convBad(r, c, ['x', 'dy']);
      const filterShape = (c.attrs['filterShape'] as number[]).slice();
      filterShape[r.int(4)] = r.pick([0, -1, -(2 ** 31), (filterShape[2] ?? 1) + 1]);
      return { ...c, attrs: { ...c.attrs, filterShape }, hostile: true };
    },
  };
}

// --- pooling ----------------------------------------------------------------------------------------

interface PoolDraw {
  x: number[];
  attrs: Record<string, unknown>;
  out: number[];
}

function poolDraw(r: Rng, rounding: boolean): PoolDraw {
  const x = [r.chance(0.1) ? r.pick([0, 3]) : r.range(1, 2), dim(r, 9), dim(r, 9), r.range(1, 5)];
  const filterSize = pair(r, 1, 4);
  const strides = pair(r, 1, 3);
  const pc = r.int(4);
  let pad: Pad = pc === 0 ? 'valid' : pc === 1 ? 'same' : r.range(0, 2);
  if (pc === 3)
    pad = [
      [0, 0],
      [r.range(0, 1), r.range(0, 1)],
      [r.range(0, 1), r.range(0, 1)],
      [0, 0],
    ];
  const attrs: Record<string, unknown> = { filterSize, strides, pad };
  if (rounding && typeof pad === 'number' && r.chance(0.5))
    attrs['dimRoundingMode'] = r.pick(['floor', 'round', 'ceil']);
  let out = [x[0]!, 1, 1, x[3]!];
  try {
    const info = backend_util.computePool2DInfo(
      x as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad as 'valid',
      attrs['dimRoundingMode'] as 'floor' | undefined,
    );
    out = info.outShape.slice();
  } catch {
    // invalid geometry: a guess, refused by both backends
  }
  return { x, attrs, out: out.map((d) => Math.max(0, d)) };
}

function poolFwd(name: string): KernelFuzzer {
  return {
    name,
    gen(r) {
      const g = poolDraw(r, true);
      // Average pooling sums: no huge finite values (float32 vs double overflow).
      const x = f32(r, g.x, { specials: name === 'MaxPool' ? WIDE : SPECIAL });
      return { inputs: { x }, attrs: g.attrs, hostile: false };
    },
    badNumbers: GEOMETRY_BAD_NUMBERS,
  };
}

function poolGrad(name: string): KernelFuzzer {
  const max = name === 'MaxPoolGrad';
  return {
    name,
    gen(r) {
      const g = poolDraw(r, max);
      const inputs: Record<string, TensorSpec> = {
        dy: f32(r, g.out),
        input: f32(r, g.x, max ? { specials: WIDE } : {}),
      };
      if (max) inputs['output'] = f32(r, g.out);
      return { inputs, attrs: g.attrs, hostile: false };
    },
    bad: (r, c) => convBad(r, c, ['dy', 'input']),
    badNumbers: GEOMETRY_BAD_NUMBERS,
  };
}

// --- matmul -----------------------------------------------------------------------------------------

interface MatDraw {
  a: number[];
  b: number[];
  out: number[];
  m: number;
  n: number;
  ta: boolean;
  tb: boolean;
}

function matDraw(r: Rng): MatDraw {
  const m = dim(r, 12);
  const n = dim(r, 12);
  const k = dim(r, 12);
  const ta = r.chance(0.3);
  const tb = r.chance(0.3);
  const outerRank = r.range(0, 3);
  const outer = randShape(r, outerRank, 3, 16);
  const side = () => {
    const keep = r.range(0, outerRank);
    return outer.slice(outerRank - keep).map((d) => (r.chance(0.3) ? 1 : d));
  };
  const oa = side();
  const ob = side();
  const a = [...oa, ...(ta ? [k, m] : [m, k])];
  const b = [...ob, ...(tb ? [n, k] : [k, n])];
  let bo: number[] = [];
  try {
    bo = backend_util.assertAndGetBroadcastShape(oa, ob);
  } catch {
    // not broadcastable: refused by both
  }
  return { a, b, out: [...bo, m, n], m, n, ta, tb };
}

const batchMatMul: KernelFuzzer = {
  name: 'BatchMatMul',
  gen(r) {
    const g = matDraw(r);
    return {
      inputs: { a: f32(r, cap(g.a, 1 << 14)), b: f32(r, cap(g.b, 1 << 14)) },
      attrs: { transposeA: g.ta, transposeB: g.tb },
      hostile: false,
    };
  },
  bad: (r, c) => convBad(r, c, ['a', 'b']),
};

const fusedMatMul: KernelFuzzer = {
  name: '_FusedMatMul',
  gen(r) {
    const g = matDraw(r);
    const inputs: Record<string, TensorSpec> = {
      a: f32(r, cap(g.a, 1 << 14)),
      b: f32(r, cap(g.b, 1 << 14)),
    };
    if (r.chance(0.7)) {
      const bias = r.pick([[g.n], [g.n], [1], [], [g.m, g.n], [1, g.n], [g.m, 1], g.out, [2, ...g.out]]);
      inputs['bias'] = f32(r, cap(bias.slice(), 1 << 14));
    }
    const activation = r.pick(['linear', 'relu', 'relu', 'relu6', 'elu', 'leakyrelu', 'sigmoid', 'prelu']);
    const attrs: Record<string, unknown> = { transposeA: g.ta, transposeB: g.tb, activation };
    if (activation === 'leakyrelu') attrs['leakyreluAlpha'] = 0.1;
    if (activation === 'prelu') inputs['preluActivationWeights'] = f32(r, [g.n]);
    return { inputs, attrs, hostile: false };
  },
  bad: (r, c) => convBad(r, c, ['a', 'b']),
};

// --- Retort custom kernels --------------------------------------------------------------------------

const adam: KernelFuzzer = {
  name: 'RetortAdamUpdate',
  gen(r) {
    const shape = randShape(r, r.range(0, 4), 8, 4096);
    const step = r.range(1, 1000);
    const beta1 = r.pick([0.9, 0, 0.5]);
    const beta2 = r.pick([0.999, 0.99, 0]);
    return {
      inputs: {
        p: f32(r, shape),
        g: f32(r, shape),
        m: f32(r, shape),
        v: f32(r, shape, { lo: 0, hi: 1 }),
      },
      attrs: {
        lr: r.pick([1e-3, 0.1, 0]),
        beta1,
        beta2,
        eps: r.pick([1e-8, 1e-6]),
        c1: beta1 === 0 ? 1 : 1 / (1 - beta1 ** step),
        c2: beta2 === 0 ? 1 : 1 / (1 - beta2 ** step),
        weightDecay: r.pick([0, 0.01, 0.1]),
        decoupled: r.chance(0.5),
      },
      hostile: false,
    };
  },
};

const sgd: KernelFuzzer = {
  name: 'RetortSgdUpdate',
  gen(r) {
    const shape = randShape(r, r.range(0, 4), 8, 4096);
    return {
      inputs: { p: f32(r, shape), g: f32(r, shape), buf: f32(r, shape) },
      attrs: {
        lr: r.pick([0.1, 0.01, 0]),
        momentum: r.pick([0, 0.9]),
        dampening: r.pick([0, 0.1]),
        weightDecay: r.pick([0, 1e-4]),
        nesterov: r.chance(0.5),
        firstStep: r.chance(0.3),
      },
      hostile: false,
    };
  },
};

function bnShape(r: Rng): number[] {
  return randShape(r, r.range(2, 4), 6, 4096).map((d, i, s) => (i === s.length - 1 ? Math.max(1, d) : d));
}

/** A per-channel parameter of the wrong length. */
function wrongParam(r: Rng, c: FuzzCase, names: string[]): FuzzCase {
  const inputs = { ...(c.inputs as Record<string, TensorSpec>) };
  const k = r.pick(names);
  const len = inputs[k]!.shape[0] ?? 1;
  inputs[k] = f32(r, r.pick([[len + 1], [Math.max(0, len - 1)], [len, 1], []]));
  return { inputs, attrs: c.attrs, hostile: true };
}

const bnTrain: KernelFuzzer = {
  name: 'RetortBatchNormTrain',
  gen(r) {
    const xs = bnShape(r);
    const c = xs[xs.length - 1]!;
    return {
      inputs: {
        x: f32(r, xs),
        gamma: f32(r, [c]),
        beta: f32(r, [c]),
        runMean: f32(r, [c]),
        runVar: f32(r, [c], { lo: 0, hi: 2 }),
      },
      attrs: { epsilon: r.pick([1e-3, 1e-5, 0.1]), momentum: r.pick([0.9, 0.99, 0]) },
      hostile: false,
    };
  },
  bad: (r, c) => wrongParam(r, c, ['gamma', 'beta', 'runMean', 'runVar']),
};

const bnTrainGrad: KernelFuzzer = {
  name: 'RetortBatchNormTrainGrad',
  gen(r) {
    const xs = bnShape(r);
    const c = xs[xs.length - 1]!;
    return {
      inputs: {
        dy: f32(r, xs),
        x: f32(r, xs),
        gamma: f32(r, [c]),
        mean: f32(r, [c]),
        invStd: f32(r, [c], { lo: 0.1, hi: 3 }),
      },
      attrs: {},
      hostile: false,
    };
  },
  bad(r, c) {
    if (r.chance(0.5)) return wrongParam(r, c, ['gamma', 'mean', 'invStd']);
    // dy with another shape than x
    const inputs = { ...(c.inputs as Record<string, TensorSpec>) };
    inputs['dy'] = mutateTensor(r, inputs['dy']!);
    return { inputs, attrs: {}, hostile: true };
  },
};

/** A symmetric matrix batch [B, n, n]: random, low rank, diagonal with repeats, or nearly so. */
function symBatch(r: Rng, b: number, n: number): TensorSpec {
  const v = new Float32Array(b * n * n);
  const kind = r.int(6);
  for (let i = 0; i < b; i++) {
    const o = i * n * n;
    for (let p = 0; p < n; p++)
      for (let q = p; q < n; q++) {
        let x: number;
        if (kind === 0)
          x = p === q ? r.range(-2, 2) : 0; // diagonal with repeats
        else if (kind === 1)
          x = p === q ? 1 : r.next() * 1e-3; // clustered values
        else x = r.next() * 2 - 1;
        v[o + p * n + q] = x;
        v[o + q * n + p] = kind === 2 ? r.next() * 2 - 1 : x; // kind 2: not symmetric (symmetrised)
      }
  }
  if (r.chance(0.03) && v.length > 0) v[r.int(v.length)] = r.pick(SPECIAL);
  return { shape: [b, n, n], dtype: 'float32', values: v };
}

const symEig: KernelFuzzer = {
  name: 'RetortSymEig',
  gen(r) {
    const n = r.chance(0.1) ? r.range(9, 24) : r.range(1, 8);
    return { inputs: { x: symBatch(r, r.chance(0.05) ? 0 : r.range(1, 3), n) }, attrs: {}, hostile: false };
  },
};

const symEigGrad: KernelFuzzer = {
  name: 'RetortSymEigGrad',
  gen(r) {
    const b = r.chance(0.05) ? 0 : r.range(1, 3);
    const n = r.chance(0.1) ? r.range(9, 16) : r.range(1, 8);
    // Eigenvalues descending (equal ones now and then) and orthonormal-ish vectors: the kernel only
    // needs consistent shapes; random columns exercise the same arithmetic.
    const vals = new Float32Array(b * n);
    for (let i = 0; i < b; i++) {
      let x = 3;
      for (let j = 0; j < n; j++) {
        if (!(j > 0 && r.chance(0.1))) x -= 0.05 + r.next();
        vals[i * n + j] = x;
      }
    }
    const gVectors = f32(r, [b, n, n]);
    // Columns without gradient (skipped by both).
    if (r.chance(0.5))
      for (let q = 0; q < n; q++) {
        if (r.chance(0.5)) continue;
        for (let i = 0; i < b; i++) for (let k = 0; k < n; k++) gVectors.values[i * n * n + k * n + q] = 0;
      }
    return {
      inputs: {
        values: { shape: [b, n], dtype: 'float32', values: vals },
        valuesLo: f32(r, [b, n], { lo: -1e-7, hi: 1e-7, specials: [] }),
        vectors: f32(r, [b, n, n], { lo: -1, hi: 1 }),
        gValues: f32(r, [b, n], { specials: r.chance(0.3) ? [0] : SPECIAL }),
        gVectors,
      },
      attrs: {},
      hostile: false,
    };
  },
  bad(r, c) {
    // The other inputs disagree with vectors' [B, n, n].
    const inputs = { ...(c.inputs as Record<string, TensorSpec>) };
    const k = r.pick(['values', 'valuesLo', 'gValues', 'gVectors']);
    const t = inputs[k]!;
    const shape = t.shape.slice();
    shape[r.int(shape.length)] = Math.max(0, (shape[0] ?? 1) + r.pick([1, -1, 3]));
    inputs[k] = f32(r, shape);
    return { inputs, attrs: {}, hostile: true };
  },
};

function rowsTable(r: Rng): [number, number] {
  return [r.chance(0.1) ? 1 : r.range(1, 40), r.chance(0.05) ? 1 : r.range(1, 24)];
}

function rowsBad(r: Rng, c: FuzzCase): FuzzCase {
  const inputs = { ...(c.inputs as Record<string, TensorSpec>) };
  const idx = inputs['indices']!;
  const m = inputs['table']!.shape[0] ?? 1;
  if (idx.values.length > 0 && r.chance(0.7)) {
    const v = Int32Array.from(idx.values);
    v[r.int(v.length)] = r.pick([-1, m, m + 7, 2 ** 31 - 1, -(2 ** 31)]);
    inputs['indices'] = { ...idx, values: v };
    return { inputs, attrs: {}, hostile: true };
  }
  return mutate(r, c);
}

const gatherRowsDot: KernelFuzzer = {
  name: 'RetortGatherRowsDot',
  gen(r) {
    const [m, d] = rowsTable(r);
    const n = r.range(r.chance(0.05) ? 0 : 1, 8);
    const k = r.range(r.chance(0.05) ? 0 : 1, 12);
    return {
      inputs: { table: f32(r, [m, d]), indices: i32(r, [n, k], 0, m - 1), x: f32(r, [n, d]) },
      attrs: {},
      hostile: false,
    };
  },
  bad: rowsBad,
};

const gatherRowsWeightedSum: KernelFuzzer = {
  name: 'RetortGatherRowsWeightedSum',
  gen(r) {
    const [m, d] = rowsTable(r);
    const n = r.range(r.chance(0.05) ? 0 : 1, 8);
    const k = r.range(r.chance(0.05) ? 0 : 1, 12);
    return {
      inputs: { table: f32(r, [m, d]), indices: i32(r, [n, k], 0, m - 1), w: f32(r, [n, k]) },
      attrs: {},
      hostile: false,
    };
  },
  bad: rowsBad,
};

const scatterRows: KernelFuzzer = {
  name: 'RetortScatterRows',
  gen(r) {
    const [m, d] = rowsTable(r);
    const rr = r.range(0, 10);
    return {
      inputs: { table: f32(r, [m, d]), indices: i32(r, [rr], 0, m - 1), rows: f32(r, [rr, d]) },
      attrs: {},
      hostile: false,
    };
  },
  bad: rowsBad,
};

/** One fuzzer per kernel the native backend registers (test/kernel-fuzz.test.ts checks the list). */
export const FUZZERS: readonly KernelFuzzer[] = [
  convFwd('Conv2D', false),
  convFwd('FusedConv2D', false),
  convBackpropInput('Conv2DBackpropInput', false),
  convBackpropFilter('Conv2DBackpropFilter', false),
  convFwd('DepthwiseConv2dNative', true),
  convBackpropInput('DepthwiseConv2dNativeBackpropInput', true),
  convBackpropFilter('DepthwiseConv2dNativeBackpropFilter', true),
  adam,
  sgd,
  bnTrain,
  bnTrainGrad,
  symEig,
  symEigGrad,
  gatherRowsDot,
  gatherRowsWeightedSum,
  scatterRows,
  gatherV2,
  unsortedSegmentSum,
  slice,
  splitV,
  concat,
  padV2,
  tile,
  poolFwd('MaxPool'),
  poolGrad('MaxPoolGrad'),
  poolFwd('AvgPool'),
  poolGrad('AvgPoolGrad'),
  batchMatMul,
  fusedMatMul,
  ...binaryNames.map(binary),
  ...unaryNames.map(unary),
  addN,
  fusedBatchNorm,
  ...['Sum', 'Mean', 'Max', 'Min', 'Prod'].map(reduce),
  transpose,
  softmax,
  argMax,
];

/**
 * Tolerance per kernel: an output passes when max |native - cpu| <= tol * max(1, max |cpu|) over its
 * finite entries, with NaN and each infinity at the same places. Default 1e-5; looser ones say why.
 */
export const TOLERANCE: Record<string, { tol: number; why: string }> = {};
const accumulate = (names: string[], tol: number, why: string) => {
  for (const n of names) TOLERANCE[n] = { tol, why };
};
accumulate(
  [
    'Conv2D',
    'FusedConv2D',
    'Conv2DBackpropInput',
    'Conv2DBackpropFilter',
    'DepthwiseConv2dNative',
    'DepthwiseConv2dNativeBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'BatchMatMul',
    '_FusedMatMul',
  ],
  1e-4,
  "oneDNN's blocked, vectorised float32 accumulation adds the products in another order than tfjs's loops",
);

accumulate(
  ['RetortAdamUpdate'],
  1e-3,
  'native computes in float32, the JS reference in double: g = grad + wd * p cancels when the two nearly ' +
    'cancel, and m / (sqrt(v) + eps) magnifies the difference when v is tiny',
);

export function toleranceOf(kernel: string): number {
  return TOLERANCE[kernel]?.tol ?? 1e-5;
}
