/**
 * Timing the entries of a latency table (latency-table.ts) on this machine, and the fingerprint of
 * the machine that timed them: timings from one CPU, addon build or thread count are wrong on
 * another, so a table holds them per fingerprint and a machine only ever reads its own.
 *
 * What is timed, per runtime and batch size (a "setting"): each key once, as a one-unit model
 * (input of the unit's shape -> fresh copies of its layers); medians of repeated runs, with as many
 * runs as fill `minTimeMs` (a 20 us unit gets hundreds), because the machine may be busy.
 * - native: wall-clock of tfjs `predictOnBatch` on the 'native' backend (kernels run
 *   synchronously: returning means computed). The output is not read back: a readback copies the
 *   whole map into a fresh array, which the full model never does for its inner maps. A one-unit
 *   model still pays the call once; a "fixed" entry per output shape times a model that does
 *   nothing (an identity of that shape), and the unit's net cost is its entry minus that.
 * - onnxruntime: the unit exported with exportOnnx, without the export's NHWC <-> NCHW transposes
 *   at its input and output (inside the full export only the model input is transposed), run in
 *   onnxruntime-node with the options of measureOrtLatencies (all graph optimizations, 2 intra-op
 *   threads). The entry is the unit's own kernel time from onnxruntime's profiler, not the run's
 *   wall-clock: a lone unit's run was 2-3x its kernels at batch 64 (ResNet-20, 2 busy cores),
 *   because onnxruntime wraps a lone NCHWc conv in layout reorders (in the full model maps stay
 *   NCHWc from conv to conv) and hands every output back in a freshly allocated buffer.
 *   What the fp32 export does with batch norm matters here: it writes BatchNormalization as its
 *   own node (only the int8 exports fold it), and onnxruntime folds it into the conv before it and
 *   fuses the activation after; hence one unit per conv + batch norm + activation.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import onnxProto from 'onnx-proto';
import { addonPath, cpuInfo, isaCapFromEnv, nativeIsa } from 'retort-kd-native';
import { exportOnnx } from '../export/onnx.js';
import { median } from '../measure/latency.js';
import { loadOrt } from '../util/ort.js';
import { stableJson } from './latency-units.js';

export type LatencyRuntime = 'native' | 'onnxruntime';
export interface LatencySetting {
  runtime: LatencyRuntime;
  batch: number;
}

// ---------------------------------------------------------------- machine fingerprint

/** What makes timings from one machine invalid on another. */
export interface MachineFingerprint {
  cpu: string;
  arch: string;
  cores: number;
  /** The CPU flags that change oneDNN's or onnxruntime's kernels (present ones only). */
  flags: string[];
  /** x86-64 level of the loaded addon build, and the cap from the environment. */
  isa: string | null;
  isaCap: string | null;
  /** SHA-256 prefix of the addon binary: a rebuilt kernel may be faster or slower. */
  addon: string | null;
  nativeThreads: string;
  ortThreads: number;
  node: string;
  tfjs: string;
  onnxruntime: string | null;
}

const SPEED_FLAGS = [
  'avx2',
  'fma',
  'avx512f',
  'avx512bw',
  'avx512_vnni',
  'avx_vnni',
  'avx512_bf16',
  'amx_tile',
  'amx_int8',
  'asimd',
  'sve',
];

/** This machine's fingerprint (`ortThreads`: the intra-op threads the table is timed with). */
export async function machineFingerprint(ortThreads = 2): Promise<MachineFingerprint> {
  const cpu = cpuInfo();
  let addon: string | null = null;
  try {
    addon = createHash('sha256').update(readFileSync(addonPath)).digest('hex').slice(0, 12);
  } catch {
    // no addon: the backend runs its JS kernels, and `isa` is null too
  }
  let onnxruntime: string | null = null;
  try {
    onnxruntime = (await loadOrt('latency table')).env.versions.node ?? null;
  } catch {
    // not installed: native-only tables still work
  }
  return {
    cpu: cpu.model,
    arch: cpu.arch,
    cores: availableParallelism(),
    flags: SPEED_FLAGS.filter((f) => cpu.flags.has(f)),
    isa: nativeIsa,
    isaCap: isaCapFromEnv()?.from ?? null,
    addon,
    nativeThreads: process.env['RETORT_NUM_THREADS'] ?? process.env['OMP_NUM_THREADS'] ?? 'default',
    ortThreads,
    node: process.versions.node,
    tfjs: tf.version_core,
    onnxruntime,
  };
}

export const fingerprintId = (fp: MachineFingerprint): string =>
  createHash('sha256').update(stableJson(fp)).digest('hex').slice(0, 16);

// ---------------------------------------------------------------- measuring

/** One thing to time. */
export interface MeasureRequest {
  setting: LatencySetting;
  /** A unit, a fixed-cost model (the cost of one call) or a whole candidate. */
  what: 'unit' | 'fixed' | 'model';
  /** The table key of a unit or fixed-cost model; undefined for a whole candidate model. */
  key: string | undefined;
  /** Builds (or returns) the model to time; the caller disposes it. */
  model: () => tfl.LayersModel;
}
/** Median milliseconds of one run of the request's model at its setting's batch. */
export type MeasureFn = (req: MeasureRequest) => Promise<number>;

export interface MeasureOptions {
  /** Untimed runs first (at least 1: they also estimate the run time). Default 3. */
  warmup?: number;
  /** Fewest timed runs. Default 10. */
  repeats?: number;
  /**
   * More timed runs until they add up to this many milliseconds (at most `maxRepeats`): a 20 us
   * unit needs hundreds of runs for a median that a busy machine's preemptions do not move.
   * Default 100.
   */
  minTimeMs?: number;
  maxRepeats?: number;
  /** onnxruntime intra-op threads. Default 2. */
  ortThreads?: number;
}

/** Median milliseconds of `run` after `warmup` untimed runs, repeats as MeasureOptions says. */
async function timeRuns(
  run: () => unknown,
  o: Required<MeasureOptions>,
): Promise<{ medianMs: number; runs: number }> {
  const once = async () => {
    const t0 = performance.now();
    await run();
    return performance.now() - t0;
  };
  const warm: number[] = [];
  for (let i = 0; i < Math.max(1, o.warmup); i++) warm.push(await once());
  const n = Math.min(
    o.maxRepeats,
    Math.max(o.repeats, Math.ceil(o.minTimeMs / Math.max(median(warm), 1e-3))),
  );
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await once());
  return { medianMs: median(times), runs: n };
}

async function timeNative(
  model: tfl.LayersModel,
  batch: number,
  o: Required<MeasureOptions>,
): Promise<number> {
  if (tf.getBackend() !== 'native')
    throw new Error(
      `latency table: runtime 'native' times tfjs's 'native' backend, but the active backend is '${tf.getBackend()}' (import 'retort-kd-native', then await tf.setBackend('native'))`,
    );
  const shape = (model.inputs[0]!.shape.slice(1) as number[]).map((d) => d ?? 1);
  const x = tf.randomNormal([batch, ...shape], 0, 1, 'float32', 1);
  // predictOnBatch: predict would split a batch of 64 into two of 32 and concatenate the outputs.
  // The callback returns nothing: tidy walks a returned container element by element.
  const run = () =>
    tf.tidy(() => {
      model.predictOnBatch(x);
    });
  try {
    return (await timeRuns(run, o)).medianMs;
  } finally {
    x.dispose();
  }
}

const { onnx } = onnxProto;
const permOf = (n: onnxProto.onnx.INodeProto) =>
  n.opType === 'Transpose'
    ? (n.attribute?.find((a) => a.name === 'perm')?.ints ?? []).map(String).join(',')
    : '';

/**
 * The export without its boundary transposes: NHWC -> NCHW right after the input and NCHW ->
 * NHWC right before the output are dropped, the graph's input and output declared NCHW. Returns
 * the bytes and the new per-example input shape.
 */
export function nchwBoundary(
  bytes: Uint8Array,
  inShape: readonly number[],
): { bytes: Uint8Array; shape: number[] } {
  const m = onnx.ModelProto.decode(bytes);
  const g = m.graph!;
  const nodes = g.node ?? [];
  const drop = new Set<onnxProto.onnx.INodeProto>();
  const nchw = <T>(d: T[]): T[] => [d[0]!, d[3]!, d[1]!, d[2]!];
  let shape = [...inShape];
  const readers = nodes.filter((n) => n.input?.includes('input'));
  if (inShape.length === 3 && readers.length > 0 && readers.every((n) => permOf(n) === '0,3,1,2')) {
    const names = new Set(readers.map((n) => n.output![0]!));
    for (const n of nodes) n.input = (n.input ?? []).map((i) => (names.has(i) ? 'input' : i));
    for (const n of readers) drop.add(n);
    const dims = g.input![0]!.type!.tensorType!.shape!;
    dims.dim = nchw(dims.dim!);
    shape = [inShape[2]!, inShape[0]!, inShape[1]!];
  }
  const id = nodes.find((n) => n.opType === 'Identity' && n.output?.[0] === 'output');
  const src = id && nodes.find((n) => n.output?.[0] === id.input?.[0]);
  const srcReaders = src ? nodes.filter((n) => n.input?.includes(src.output![0]!)).length : 0;
  if (id && src && permOf(src) === '0,2,3,1' && srcReaders === 1) {
    id.input = [src.input![0]!];
    drop.add(src);
    const dims = g.output![0]!.type!.tensorType!.shape!;
    dims.dim = nchw(dims.dim!);
  }
  g.node = nodes.filter((n) => !drop.has(n));
  return { bytes: onnx.ModelProto.encode(m).finish(), shape };
}

interface ProfileEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string };
}
const KERNEL_SUFFIX = '_kernel_time';

/**
 * Per run, the summed kernel time (ms) of the nodes that are the unit's own, from onnxruntime's
 * profile: not the layout reorders onnxruntime puts around a lone NCHWc op (inside the full model
 * the maps stay NCHWc between convs), not the export's layout transposes, not the output Identity.
 * Median over the last `runs` runs (the timed ones).
 */
export function ownKernelMs(events: readonly ProfileEvent[], runs: number): number {
  const spans = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').slice(-runs);
  const sums = spans.map(() => 0);
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith(KERNEL_SUFFIX)) continue;
    const node = e.name.slice(0, -KERNEL_SUFFIX.length);
    const op = e.args?.op_name ?? '';
    if (
      op === 'ReorderInput' ||
      op === 'ReorderOutput' ||
      node === 'output' ||
      /\.(nchw|tf)__\d+$/.test(node)
    )
      continue;
    const i = spans.findIndex((r) => e.ts! >= r.ts! && e.ts! <= r.ts! + r.dur!);
    if (i >= 0) sums[i]! += e.dur! / 1000;
  }
  if (sums.length === 0) throw new Error('latency table: the onnxruntime profile holds no runs');
  return median(sums);
}

/**
 * onnxruntime-node with the session options of measureOrtLatencies (src/measure/latency.ts): all
 * graph optimizations, sequential execution, `ortThreads` intra-op threads; one live session.
 * A unit (`profile`) gives its own kernels' time from onnxruntime's profiler, anything else its
 * wall-clock time per run.
 */
async function timeOrt(
  model: tfl.LayersModel,
  batch: number,
  o: Required<MeasureOptions>,
  profile: boolean,
): Promise<number> {
  const ort = await loadOrt('latency table');
  const inShape = model.inputs[0]!.shape.slice(1) as number[];
  const exported = exportOnnx(model);
  const { bytes, shape } = profile ? nchwBoundary(exported, inShape) : { bytes: exported, shape: inShape };
  const dir = profile ? mkdtempSync(join(tmpdir(), 'retort-latency-')) : undefined;
  try {
    const session = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      intraOpNumThreads: o.ortThreads,
      ...(dir ? { enableProfiling: true, profileFilePrefix: join(dir, 'ort') } : {}),
    });
    try {
      const n = batch * shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
      const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', data, [batch, ...shape]) };
      const t = await timeRuns(() => session.run(feeds), o);
      if (!dir) return t.medianMs;
      session.endProfiling();
      const file = readdirSync(dir).find((f) => f.endsWith('.json'));
      if (file === undefined) throw new Error(`latency table: onnxruntime wrote no profile in ${dir}`);
      return ownKernelMs(JSON.parse(readFileSync(join(dir, file), 'utf8')) as ProfileEvent[], t.runs);
    } finally {
      await session.release();
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/** The real measuring function: native (tfjs 'native' backend) or onnxruntime-node. */
export function latencyMeasurer(opts: MeasureOptions = {}): MeasureFn {
  const o: Required<MeasureOptions> = {
    warmup: 3,
    repeats: 10,
    minTimeMs: 100,
    maxRepeats: 500,
    ortThreads: 2,
    ...opts,
  };
  return async ({ setting, what, model }) => {
    const m = model();
    return setting.runtime === 'native'
      ? timeNative(m, setting.batch, o)
      : timeOrt(m, setting.batch, o, what === 'unit');
  };
}
