/**
 * One kernel-fuzz worker: `worker.ts <seed> <units JSON>` runs, for each unit {kernel, from, to},
 * cases [from, to) of that kernel, each on backend `cpu` (the reference) and then on `native` with
 * the same input values, and prints one line per case as soon as it ends, so that the parent
 * (run.ts) can tell which case a crash or a hang belongs to:
 *
 *   C <kernel> <i> <class> <ran> <addon> <usec> <err> [JSON detail]
 *
 * class: ok | both (both threw) | diff | native-threw | cpu-threw | input-written; ran: 1 when the
 * kernel ran natively (nativeCallCounts grew); addon: 1 when the native call entered the addon (also
 * when the addon then threw); err: max |native - cpu| / max(1, max |cpu|) of an `ok` case. Then
 * `M <maxRSS KiB>` at the end.
 */
import * as tf from '@tensorflow/tfjs-core';
import { native } from '../../src/binding.js';
import { nativeCallCounts } from '../../src/index.js';
import { drawCase, FUZZERS, type FuzzCase, type Output, type TensorSpec, toleranceOf } from './kernels.js';

export type Outcome = { ok: true; outs: Output[]; inputsWritten: string | null } | { ok: false; msg: string };

// Counts calls into the addon (the kernels look its functions up on every call), so that a call the
// addon refused still counts as one that reached native code.
let addonCalls = 0;
if (native !== null) {
  const addon = native as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(addon)) {
    if (typeof v !== 'function' || k === 'setNumThreads') continue;
    const fn = v as (...a: unknown[]) => unknown;
    addon[k] = (...a: unknown[]) => {
      addonCalls++;
      return fn.apply(native, a);
    };
  }
}

function materialize(t: TensorSpec): tf.Tensor {
  // A copy per backend: the backend keeps the array it is given as the tensor's storage.
  return tf.tensor(t.values.slice(), t.shape, t.dtype);
}

const errText = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)).slice(0, 240);

/** Runs one case on `backend`; outputs read back, inputs checked for writes (native must not write). */
export function execute(backend: string, kernel: string, c: FuzzCase): Outcome {
  tf.setBackend(backend);
  let result: Outcome = { ok: false, msg: 'not run' };
  try {
    // tidy's result is walked for tensors: return nothing, keep the result in a closure.
    tf.tidy(() => {
      const list = Array.isArray(c.inputs) ? c.inputs.map(materialize) : null;
      const named = Array.isArray(c.inputs)
        ? null
        : Object.fromEntries(Object.entries(c.inputs).map(([k, t]) => [k, materialize(t)]));
      const out = tf.engine().runKernel(kernel, (list ?? named) as never, c.attrs as never) as
        | tf.Tensor
        | tf.Tensor[];
      const outs = (Array.isArray(out) ? out : [out]).map((t) => ({
        shape: t.shape.slice(),
        dtype: t.dtype,
        values: (t.dataSync() as Float32Array | Int32Array | Uint8Array).slice(),
      }));
      let inputsWritten: string | null = null;
      const specs = Array.isArray(c.inputs)
        ? c.inputs.map((t, i) => [String(i), t] as const)
        : Object.entries(c.inputs);
      const tensors = list ?? Object.values(named!);
      specs.forEach(([k, t], i) => {
        const now = tensors[i]!.dataSync();
        for (let j = 0; j < t.values.length; j++)
          if (!Object.is(now[j], t.values[j]) && !(Number.isNaN(now[j]) && Number.isNaN(t.values[j]))) {
            inputsWritten ??= `input ${k} element ${j}: ${t.values[j]} -> ${now[j]}`;
            break;
          }
      });
      result = { ok: true, outs, inputsWritten };
    });
  } catch (e) {
    result = { ok: false, msg: errText(e) };
  }
  return result;
}

/** null when `got` matches `ref` within `tol`, else what differs; `err` gets the largest ratio seen. */
export function compare(ref: Output[], got: Output[], tol: number, err: { max: number }): string | null {
  if (ref.length !== got.length) return `${got.length} outputs, cpu ${ref.length}`;
  for (let o = 0; o < ref.length; o++) {
    const a = got[o]!;
    const b = ref[o]!;
    if (a.dtype !== b.dtype) return `output ${o}: dtype ${a.dtype}, cpu ${b.dtype}`;
    if (a.shape.length !== b.shape.length || a.shape.some((d, i) => !Object.is(d, b.shape[i])))
      return `output ${o}: shape [${a.shape}], cpu [${b.shape}]`;
    if (a.values.length !== b.values.length)
      return `output ${o}: ${a.values.length} values, cpu ${b.values.length}`;
    let scale = 1;
    for (let i = 0; i < b.values.length; i++) {
      const v = Math.abs(b.values[i]!);
      if (Number.isFinite(v) && v > scale) scale = v;
    }
    const exact = a.dtype !== 'float32';
    for (let i = 0; i < b.values.length; i++) {
      const x = a.values[i]!;
      const y = b.values[i]!;
      if (!Number.isFinite(y) || !Number.isFinite(x)) {
        if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
        return `output ${o} [${a.shape}] element ${i}: native ${x}, cpu ${y}`;
      }
      const d = Math.abs(x - y) / scale;
      if (exact ? d !== 0 : d > tol)
        return `output ${o} [${a.shape}] element ${i}: native ${x}, cpu ${y} (|diff| / max(1, max|cpu|) = ${d.toExponential(2)} > ${tol})`;
      if (d > err.max) err.max = d;
    }
  }
  return null;
}

/** A short description of a case: input shapes and dtypes, attributes. */
export function describe(c: FuzzCase): string {
  const t = (s: TensorSpec) => `${s.dtype === 'float32' ? '' : `${s.dtype} `}[${s.shape.join(',')}]`;
  const inputs = Array.isArray(c.inputs)
    ? `[${c.inputs.map(t).join(' ')}]`
    : Object.entries(c.inputs)
        .map(([k, s]) => `${k} ${t(s)}`)
        .join(', ');
  const attrs = JSON.stringify(c.attrs, (_k, v) =>
    typeof v === 'number' && !Number.isFinite(v) ? String(v) : v,
  );
  return `${c.hostile ? `hostile${c.note ? ` (${c.note})` : ''} ` : ''}{${inputs}} ${attrs}`;
}

/** Findings are the classes after `refused`; see classify. */
export const CLASSES = [
  'ok',
  'both',
  'refused',
  'excused',
  'diff',
  'native-threw',
  'cpu-threw',
  'input-written',
] as const;
export type CaseClass = (typeof CLASSES)[number];
export const isFinding = (c: CaseClass) => CLASSES.indexOf(c) > CLASSES.indexOf('excused');

export interface Verdict {
  cls: CaseClass;
  ran: boolean;
  addon: boolean;
  err: number;
  detail: string;
  ref: Outcome;
  got: Outcome;
}

/** Runs case `i` of `kernel` on both backends and classifies it. */
export function runCase(kernel: string, seed: number, i: number): Verdict {
  const f = FUZZERS.find((x) => x.name === kernel);
  if (f === undefined) throw new Error(`no fuzzer for kernel ${kernel}`);
  const c = drawCase(f, seed, i);
  const ref = execute('cpu', kernel, c);
  const before = nativeCallCounts.get(kernel) ?? 0;
  const calls = addonCalls;
  const got = execute('native', kernel, c);
  const ran = (nativeCallCounts.get(kernel) ?? 0) > before;
  const addon = addonCalls > calls;
  const v = { ran, addon, err: 0, ref, got };
  if (!ref.ok && !got.ok) return { ...v, cls: 'both', detail: `native: ${got.msg} | cpu: ${ref.msg}` };
  const excuse = (why: string) => {
    const e = f.excuse?.(c, ref.ok ? ref.outs : undefined, got.ok ? got.outs : undefined) ?? null;
    return e === null ? null : { ...v, cls: 'excused' as const, detail: `${e}; ${why}; ${describe(c)}` };
  };
  if (!got.ok) {
    // A hostile call that cpu answers (often by reading past its arrays: undefined becomes NaN) and
    // the native checker refuses with an error naming the kernel is the wanted behaviour.
    const named = got.msg.includes(`${kernel}:`) || got.msg.includes(`${kernel} `);
    if (c.hostile && named) return { ...v, cls: 'refused', detail: `native: ${got.msg}; ${describe(c)}` };
    return (
      excuse(`native: ${got.msg}`) ?? {
        ...v,
        cls: 'native-threw',
        detail: `native: ${got.msg}; ${describe(c)}`,
      }
    );
  }
  if (!ref.ok) {
    return excuse(`cpu: ${ref.msg}`) ?? { ...v, cls: 'cpu-threw', detail: `cpu: ${ref.msg}; ${describe(c)}` };
  }
  if (got.inputsWritten !== null)
    return { ...v, cls: 'input-written', detail: `${got.inputsWritten}; ${describe(c)}` };
  const err = { max: 0 };
  const why = compare(ref.outs, got.outs, toleranceOf(kernel), err);
  if (why !== null) return excuse(why) ?? { ...v, cls: 'diff', detail: `${why}; ${describe(c)}` };
  return { ...v, cls: 'ok', err: err.max, detail: '' };
}

/** Message pairs of both-threw cases printed per worker and kernel (the parent keeps a sample). */
const BOTH_SAMPLES = 8;

async function main(): Promise<void> {
  const [seedArg, unitsArg] = process.argv.slice(2);
  if (seedArg === undefined || unitsArg === undefined)
    throw new Error('usage: worker.ts <seed> <units JSON>');
  const seed = Number(seedArg);
  const units = JSON.parse(unitsArg) as { kernel: string; from: number; to: number }[];
  await tf.ready();
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const gc = (globalThis as { gc?: () => void }).gc;
  let rssMark = process.memoryUsage.rss();
  for (const u of units) {
    let both = 0;
    for (let i = u.from; i < u.to; i++) {
      const t0 = performance.now();
      const v = runCase(u.kernel, seed, i);
      const us = Math.round((performance.now() - t0) * 1000);
      const detail =
        v.cls === 'ok' || (v.cls === 'both' && both++ >= BOTH_SAMPLES) ? '' : ` ${JSON.stringify(v.detail)}`;
      out(`C ${u.kernel} ${i} ${v.cls} ${v.ran ? 1 : 0} ${v.addon ? 1 : 0} ${us} ${v.err}${detail}`);
      if (gc && process.memoryUsage.rss() > rssMark + 256 * 1024 ** 2) {
        gc();
        rssMark = process.memoryUsage.rss();
      }
    }
  }
  out(`M ${process.resourceUsage().maxRSS}`);
}

if (process.argv[1]?.endsWith('worker.ts')) await main();
