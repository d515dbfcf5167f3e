/**
 * A measured per-unit latency lookup table, so that an architecture search predicts a candidate's
 * latency without timing it: the approach of MnasNet (Tan et al., "MnasNet: Platform-Aware Neural
 * Architecture Search for Mobile", CVPR 2019), ProxylessNAS (Cai, Zhu & Han, ICLR 2019) and
 * Once-for-All (Cai et al., ICLR 2020). Units and their keys: latency-units.ts.
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
 *
 * Prediction: predicted(model) = sum over its units of net cost + overhead. The overhead is, by
 * default, the wall-clock of an identity model with the model's output shape (the one call a model
 * makes); `fitOverhead` replaces it by a constant fitted to whole-model measurements of other
 * models: least squares on the relative error, c = sum((m - s) / m^2) / sum(1 / m^2) for measured
 * m and unit sums s, because a search's latency budget is relative. For onnxruntime the constant
 * also takes what kernel time leaves out (per-node dispatch, the input transpose).
 *
 * The cache: one JSON file (the caller names it, e.g. `<run>/search/latency-table.json`) holding
 * a table per machine fingerprint (CPU model, speed-relevant CPU flags, cores, the addon's ISA level
 * and build, the ISA cap, thread counts, Node / onnxruntime / tfjs versions): a machine only ever
 * reads and writes its own table, so a file copied to another CPU is re-measured there, never
 * reused. Written atomically (temp + rename) after every new entry, merged with what is on disk
 * (another process or machine may share the file), so an interrupted build loses one entry. A
 * corrupt or truncated file is an error naming it, unless opened with `onCorrupt: 'rebuild'`,
 * which moves it aside (never deletes it) and starts empty.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import onnxProto from 'onnx-proto';
import { addonPath, cpuInfo, isaCapFromEnv, nativeIsa } from 'retort-kd-native';
import { z } from 'zod';
import { exportOnnx } from '../export/onnx.js';
import { median } from '../measure/latency.js';
import { writeFileAtomic } from '../util/atomic.js';
import { messageOf, RetortError } from '../util/errors.js';
import { loadOrt } from '../util/ort.js';
import { decompose, stableJson, unitModel, type ZeroCostLayer } from './latency-units.js';

export { decompose, type LayerUnit, unitModel, type ZeroCostLayer } from './latency-units.js';

export type LatencyRuntime = 'native' | 'onnxruntime';
export interface LatencySetting {
  runtime: LatencyRuntime;
  batch: number;
}
export const DEFAULT_LATENCY_SETTINGS: readonly LatencySetting[] = [
  { runtime: 'native', batch: 1 },
  { runtime: 'native', batch: 64 },
  { runtime: 'onnxruntime', batch: 1 },
  { runtime: 'onnxruntime', batch: 64 },
];
export const settingId = (s: LatencySetting): string => `${s.runtime}/b${s.batch}`;

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

// ---------------------------------------------------------------- the file

const entrySchema = z.object({ ms: z.number().finite().nonnegative(), at: z.string() });
const overheadSchema = z.object({
  /** The constant, ms. */
  ms: z.number().finite(),
  /** Milliseconds per unit on top (0 unless fitted with `perUnit`). */
  perUnitMs: z.number().finite(),
  models: z.array(z.string()),
  residualMs: z.array(z.number()),
  at: z.string(),
});
const settingSchema = z.object({
  entries: z.record(z.string(), entrySchema),
  overhead: overheadSchema.optional(),
});
const fingerprintSchema = z.object({
  cpu: z.string(),
  arch: z.string(),
  cores: z.number(),
  flags: z.array(z.string()),
  isa: z.string().nullable(),
  isaCap: z.string().nullable(),
  addon: z.string().nullable(),
  nativeThreads: z.string(),
  ortThreads: z.number(),
  node: z.string(),
  tfjs: z.string(),
  onnxruntime: z.string().nullable(),
});
const machineSchema = z.object({
  fingerprint: fingerprintSchema,
  settings: z.record(z.string(), settingSchema),
});
const FORMAT = 'retort-latency-table';
const fileSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(1),
  machines: z.record(z.string(), machineSchema),
});
type TableFile = z.infer<typeof fileSchema>;
type MachineData = z.infer<typeof machineSchema>;
export type OverheadFit = z.infer<typeof overheadSchema>;

/** The file's contents; null when it does not exist; a RetortError naming it when unreadable. */
function readTableFile(path: string): TableFile | null {
  if (!existsSync(path)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new RetortError(
      `${path}: not a readable latency table (${messageOf(e)}; truncated or corrupt). Delete it, or open it with onCorrupt: 'rebuild' to move it aside and measure again`,
      { file: path, cause: e },
    );
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new RetortError(
      `${path}: not a ${FORMAT} version 1 file: ${issue.message} at ${issue.path.join('.') || '(top level)'}. Delete it, or open it with onCorrupt: 'rebuild' to move it aside and measure again`,
      { file: path },
    );
  }
  return parsed.data;
}

// ---------------------------------------------------------------- the table

/** Where a run keeps its table: `<runDir>/search/latency-table.json`. */
export const defaultTablePath = (runDir: string): string => join(runDir, 'search', 'latency-table.json');

export const fixedKey = (shape: readonly number[]): string => `fixed out=${shape.join('x')}`;

/** A model that does nothing: the fixed cost of one call returning a map of `shape`. */
function fixedModel(shape: readonly number[]): tfl.LayersModel {
  const x = tfl.input({ shape: [...shape], name: 'input' });
  const y = tfl.layers.activation({ activation: 'linear', name: 'unit0' }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: y, name: 'fixed' });
}

const outShapeOf = (model: tfl.LayersModel): number[] =>
  (model.outputs[0]!.shape.slice(1) as (number | null)[]).map((d) => d ?? 1);

/** A model's predicted latency and where it comes from. */
export interface Prediction {
  ms: number;
  overheadMs: number;
  overheadSource: 'fitted' | 'fixed-cost';
  /** Net cost of each unit (its entry minus the fixed entry of its output shape). */
  units: { key: string; layers: string[]; ms: number }[];
  zeroCost: ZeroCostLayer[];
}

export interface OpenOptions {
  /** This machine's fingerprint (default: machineFingerprint(ortThreads)). */
  fingerprint?: MachineFingerprint;
  /** onnxruntime intra-op threads the table is timed with (part of the fingerprint). Default 2. */
  ortThreads?: number;
  /** A corrupt file: 'error' (default) throws naming it; 'rebuild' moves it aside and starts empty. */
  onCorrupt?: 'error' | 'rebuild';
}

export interface EnsureProgress {
  setting: LatencySetting;
  key: string;
  ms: number;
  done: number;
  total: number;
}

interface Need {
  what: 'unit' | 'fixed';
  build: () => tfl.LayersModel;
  runtimes: readonly LatencyRuntime[];
}

export class LatencyTable {
  /** Lines worth telling the user (a corrupt file moved aside). */
  readonly notices: string[] = [];
  readonly id: string;
  private readonly data: MachineData;

  private constructor(
    readonly path: string,
    readonly fingerprint: MachineFingerprint,
    data: MachineData | undefined,
  ) {
    this.id = fingerprintId(fingerprint);
    this.data = data ?? { fingerprint, settings: {} };
  }

  /** The table of this machine in the file at `path` (empty when the file or the machine is new). */
  static async open(path: string, opts: OpenOptions = {}): Promise<LatencyTable> {
    const fp = opts.fingerprint ?? (await machineFingerprint(opts.ortThreads ?? 2));
    let file: TableFile | null;
    const notices: string[] = [];
    try {
      file = readTableFile(path);
    } catch (e) {
      if (opts.onCorrupt !== 'rebuild' || !(e instanceof RetortError)) throw e;
      const aside = `${path}.corrupt-${Date.now()}`;
      renameSync(path, aside);
      notices.push(`${e.message.split('. Delete')[0]}; moved to ${aside}, measuring again`);
      file = null;
    }
    const t = new LatencyTable(path, fp, file?.machines[fingerprintId(fp)]);
    t.notices.push(...notices);
    return t;
  }

  /** The real measuring function, with this table's onnxruntime thread count. */
  measurer(opts: Omit<MeasureOptions, 'ortThreads'> = {}): MeasureFn {
    return latencyMeasurer({ ...opts, ortThreads: this.fingerprint.ortThreads });
  }

  /** Milliseconds of `key` at `setting`, or undefined when not measured. */
  get(setting: LatencySetting, key: string): number | undefined {
    return this.data.settings[settingId(setting)]?.entries[key]?.ms;
  }

  /** Number of entries at `setting`. */
  size(setting: LatencySetting): number {
    return Object.keys(this.data.settings[settingId(setting)]?.entries ?? {}).length;
  }

  overhead(setting: LatencySetting): OverheadFit | undefined {
    return this.data.settings[settingId(setting)]?.overhead;
  }

  private slot(setting: LatencySetting) {
    const id = settingId(setting);
    this.data.settings[id] ??= { entries: {} };
    return this.data.settings[id];
  }

  /** Records one entry and writes the file. */
  set(setting: LatencySetting, key: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new Error(`latency table: '${key}' at ${settingId(setting)} measured ${ms} ms`);
    this.slot(setting).entries[key] = { ms, at: new Date().toISOString() };
    this.save();
  }

  /**
   * Writes the file atomically: what is on disk for other machines, and entries this table lacks,
   * are kept (several processes may build one file); this table's entries win.
   */
  save(): void {
    const disk = readTableFile(this.path) ?? { format: FORMAT, version: 1 as const, machines: {} };
    for (const [id, s] of Object.entries(disk.machines[this.id]?.settings ?? {})) {
      const own = this.data.settings[id];
      if (own === undefined) this.data.settings[id] = s;
      else {
        own.entries = { ...s.entries, ...own.entries };
        if (own.overhead === undefined && s.overhead !== undefined) own.overhead = s.overhead;
      }
    }
    disk.machines[this.id] = this.data;
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileAtomic(this.path, `${JSON.stringify(disk, null, 1)}\n`);
  }

  /** The keys `model` needs, each with the model that measures it and the runtimes that use it. */
  private needs(model: tfl.LayersModel): Map<string, Need> {
    const out = new Map<string, Need>();
    const all: readonly LatencyRuntime[] = ['native', 'onnxruntime'];
    for (const u of decompose(model).units) {
      out.set(u.key, { what: 'unit', build: () => unitModel(u), runtimes: all });
      // onnxruntime's unit entries are kernel time: no call cost in them to take out.
      const f = fixedKey(u.outputShape);
      const prev = out.get(f);
      if (prev === undefined || !prev.runtimes.includes('native'))
        out.set(f, { what: 'fixed', build: () => fixedModel(u.outputShape), runtimes: ['native'] });
    }
    const s = outShapeOf(model);
    out.set(fixedKey(s), { what: 'fixed', build: () => fixedModel(s), runtimes: all });
    return out;
  }

  /** Measures the keys of `models` the table lacks at each setting, saving after each one. */
  async ensure(
    models: readonly tfl.LayersModel[],
    settings: readonly LatencySetting[],
    measure: MeasureFn,
    onProgress?: (p: EnsureProgress) => void,
  ): Promise<{ measured: number; cached: number }> {
    const needed = new Map<string, Need>();
    for (const m of models)
      for (const [k, n] of this.needs(m)) {
        const prev = needed.get(k);
        needed.set(k, prev ? { ...n, runtimes: [...new Set([...prev.runtimes, ...n.runtimes])] } : n);
      }
    const todo: [string, Need, LatencySetting[]][] = [];
    let cached = 0;
    let total = 0;
    for (const [key, need] of needed) {
      const used = settings.filter((s) => need.runtimes.includes(s.runtime));
      const missing = used.filter((s) => this.get(s, key) === undefined);
      cached += used.length - missing.length;
      total += missing.length;
      if (missing.length > 0) todo.push([key, need, missing]);
    }
    let done = 0;
    for (const [key, { what, build }, missing] of todo) {
      // One model per key for all its settings: building copies of the layers draws their weights.
      let model: tfl.LayersModel | undefined;
      const get = () => {
        model ??= build();
        return model;
      };
      try {
        for (const setting of missing) {
          const ms = await measure({ setting, what, key, model: get });
          this.set(setting, key, ms);
          onProgress?.({ setting, key, ms, done: ++done, total });
        }
      } finally {
        model?.dispose();
      }
    }
    return { measured: total, cached };
  }

  /** Predicted milliseconds of one run of `model` at `setting`; throws listing unmeasured keys. */
  predict(model: tfl.LayersModel, setting: LatencySetting): Prediction {
    const { units, zeroCost } = decompose(model);
    const missing: string[] = [];
    const at = (key: string) => {
      const v = this.get(setting, key);
      if (v === undefined) missing.push(key);
      return v ?? 0;
    };
    const rows = units.map((u) => ({
      key: u.key,
      layers: u.layers.map((l) => l.name),
      ms: at(u.key) - (setting.runtime === 'native' ? at(fixedKey(u.outputShape)) : 0),
    }));
    const fit = this.overhead(setting);
    const overheadMs = fit ? fit.ms + fit.perUnitMs * units.length : at(fixedKey(outShapeOf(model)));
    if (missing.length > 0) {
      const uniq = [...new Set(missing)];
      throw new Error(
        `latency table: ${uniq.length} key(s) of model '${model.name}' are not measured at ${settingId(setting)} (first: '${uniq[0]}'); run table.ensure([model], settings, measure) first`,
      );
    }
    return {
      ms: rows.reduce((a, r) => a + r.ms, 0) + overheadMs,
      overheadMs,
      overheadSource: fit ? 'fitted' : 'fixed-cost',
      units: rows,
      zeroCost,
    };
  }

  /**
   * Fits the overhead constant at `setting` to whole-model measurements of `models` (least squares
   * on the relative error; see the file header) and stores it. `models` should not be the ones
   * the table is then checked on.
   */
  async fitOverhead(
    models: readonly tfl.LayersModel[],
    setting: LatencySetting,
    measure: MeasureFn,
    opts: { names?: readonly string[]; perUnit?: boolean } = {},
  ): Promise<OverheadFit> {
    const need = opts.perUnit ? 2 : 1;
    if (models.length < need)
      throw new Error(`latency table: fitOverhead needs at least ${need} model(s), got ${models.length}`);
    await this.ensure(models, [setting], measure);
    const slot = this.slot(setting);
    const preds = models.map((m) => this.predict(m, setting));
    const measured: number[] = [];
    for (const m of models)
      measured.push(await measure({ setting, what: 'model', key: undefined, model: () => m }));
    const s = preds.map((p) => p.ms - p.overheadMs);
    const n = preds.map((p) => p.units.length);
    const { c, perUnit } = opts.perUnit
      ? fitConstantPerUnit(measured, s, n)
      : { c: fitConstant(measured, s), perUnit: 0 };
    const fit: OverheadFit = {
      ms: c,
      perUnitMs: perUnit,
      models: [...(opts.names ?? models.map((m) => m.name))],
      residualMs: measured.map((m, i) => m - s[i]! - c - perUnit * n[i]!),
      at: new Date().toISOString(),
    };
    slot.overhead = fit;
    this.save();
    return fit;
  }
}

/** argmin_c sum(((m_i - s_i - c) / m_i)^2) = sum((m_i - s_i) / m_i^2) / sum(1 / m_i^2). */
export function fitConstant(measured: readonly number[], sums: readonly number[]): number {
  let num = 0;
  let den = 0;
  measured.forEach((m, i) => {
    num += (m - sums[i]!) / (m * m);
    den += 1 / (m * m);
  });
  return num / den;
}

/**
 * argmin over (c, d) of sum(((m_i - s_i - c - d n_i) / m_i)^2) for measured m, unit sums s and
 * unit counts n: the normal equations of that weighted least squares.
 */
export function fitConstantPerUnit(
  measured: readonly number[],
  sums: readonly number[],
  units: readonly number[],
): { c: number; perUnit: number } {
  let a11 = 0;
  let a12 = 0;
  let a22 = 0;
  let b1 = 0;
  let b2 = 0;
  measured.forEach((m, i) => {
    const w = 1 / (m * m);
    const n = units[i]!;
    const r = m - sums[i]!;
    a11 += w;
    a12 += w * n;
    a22 += w * n * n;
    b1 += w * r;
    b2 += w * n * r;
  });
  const det = a11 * a22 - a12 * a12;
  if (Math.abs(det) <= 1e-12 * a11 * a22)
    throw new Error('latency table: a per-unit overhead needs models with different unit counts');
  return { c: (b1 * a22 - b2 * a12) / det, perUnit: (a11 * b2 - a12 * b1) / det };
}

// ---------------------------------------------------------------- checking

export interface CheckRow {
  model: string;
  measuredMs: number;
  predictedMs: number;
  /** (predicted - measured) / measured. */
  relError: number;
}

export interface CheckResult {
  setting: LatencySetting;
  rows: CheckRow[];
  /** Median of |relError| over the models. */
  medianAbsRelError: number;
  maxAbsRelError: number;
}

/** Relative errors of predicted against measured milliseconds, and their median and maximum. */
export function summarizeErrors(
  setting: LatencySetting,
  rows: readonly Omit<CheckRow, 'relError'>[],
): CheckResult {
  const full = rows.map((r) => ({ ...r, relError: (r.predictedMs - r.measuredMs) / r.measuredMs }));
  const abs = full.map((r) => Math.abs(r.relError));
  return { setting, rows: full, medianAbsRelError: median(abs), maxAbsRelError: Math.max(...abs) };
}

/**
 * For each setting, each model's measured whole-model latency against the table's prediction
 * (measuring any key the table lacks first). Models are timed one after the other with `measure`.
 */
export async function checkTable(
  models: readonly tfl.LayersModel[],
  table: LatencyTable,
  opts: { settings?: readonly LatencySetting[]; measure: MeasureFn; names?: readonly string[] },
): Promise<CheckResult[]> {
  const settings = opts.settings ?? DEFAULT_LATENCY_SETTINGS;
  if (models.length === 0) throw new Error('latency table: checkTable needs at least one model');
  await table.ensure(models, settings, opts.measure);
  const results: CheckResult[] = [];
  for (const setting of settings) {
    const rows: Omit<CheckRow, 'relError'>[] = [];
    for (const [i, m] of models.entries()) {
      const predictedMs = table.predict(m, setting).ms;
      const measuredMs = await opts.measure({ setting, what: 'model', key: undefined, model: () => m });
      rows.push({ model: opts.names?.[i] ?? m.name, measuredMs, predictedMs });
    }
    results.push(summarizeErrors(setting, rows));
  }
  return results;
}
