/**
 * A measured per-unit latency lookup table, so that an architecture search predicts a candidate's
 * latency without timing it: the approach of MnasNet (Tan et al., "MnasNet: Platform-Aware Neural
 * Architecture Search for Mobile", CVPR 2019), ProxylessNAS (Cai, Zhu & Han, ICLR 2019) and
 * Once-for-All (Cai et al., ICLR 2020). Units and their keys: latency-units.ts; what is timed, how,
 * and the machine fingerprint: latency-measure.ts; checking predictions against whole models:
 * latency-check.ts.
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
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tfl from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic.js';
import { messageOf, RetortError } from '../util/errors.js';
import {
  fingerprintId,
  type LatencyRuntime,
  type LatencySetting,
  latencyMeasurer,
  type MachineFingerprint,
  type MeasureFn,
  type MeasureOptions,
  machineFingerprint,
} from './latency-measure.js';
import { decompose, unitModel, type ZeroCostLayer } from './latency-units.js';

export * from './latency-measure.js';
export { decompose, type LayerUnit, unitModel, type ZeroCostLayer } from './latency-units.js';

export const DEFAULT_LATENCY_SETTINGS: readonly LatencySetting[] = [
  { runtime: 'native', batch: 1 },
  { runtime: 'native', batch: 64 },
  { runtime: 'onnxruntime', batch: 1 },
  { runtime: 'onnxruntime', batch: 64 },
];
export const settingId = (s: LatencySetting): string => `${s.runtime}/b${s.batch}`;

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
