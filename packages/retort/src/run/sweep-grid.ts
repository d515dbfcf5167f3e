/**
 * Sweep grids (`retort sweep <grid.yaml>`): one file naming experiments, overrides shared by every
 * run, and axes whose cartesian product gives the runs. This file only expands a grid into runs; it
 * loads and validates every run's experiment, so a mistake in any of them stops the sweep before the
 * first run starts rather than hours into it.
 *
 * Run names are `<name>-<label>-<part per non-seed axis>-s<seed>`: the label only with `experiments`,
 * the seed part last (the report groups runs that differ only in a `-sN` suffix). A part is the axis
 * name (default: the key's last segment, `lr` for `optimizer.lr`) and the value: a number follows the
 * name directly (`lr0.05`, with a '-' after a name that ends in a digit: `beta2-0.99`), a string or
 * boolean follows a '-' (`opt-adam`, `hflip-false`), and a list, object or null gives the value's
 * position (`taps2`). An empty axis name leaves the value alone (`adam`). Characters outside
 * `[A-Za-z0-9._-]` become '_'.
 */
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseOrThrow } from '../config/errors.js';
import type { Experiment } from '../config/experiment.js';
import { loadExperiment, readConfigFile } from '../config/load.js';
import { resolveConfigPaths } from '../config/paths.js';
import { checkRunName, RUN_NAME } from '../train/run-dir.js';
import { RetortError } from '../util/errors.js';

/** `a.b[0].c`, the key syntax of `--set` (config/load.ts applyOverride). */
const KEY = /^[^.[\]=\s]+(?:\.[^.[\]=\s]+|\[\d+\])*$/;
const NAME_CHARS = /^[A-Za-z0-9._-]*$/;
const SEED = 'seed';

/** Overrides: `key: value` (values keep their YAML types) or `--set`-style "key=value" strings. */
const setSchema = z.union([z.record(z.string(), z.unknown()), z.array(z.string())], {
  error: 'expected a mapping (key: value) or a list of "key=value" strings',
});

const experimentRefSchema = z.union(
  [z.string().min(1), z.strictObject({ file: z.string().min(1), set: setSchema.optional() })],
  { error: 'expected an experiment file or { file, set }' },
);

const axisSchema = z.union(
  [z.array(z.unknown()), z.strictObject({ name: z.string().optional(), values: z.array(z.unknown()) })],
  { error: 'expected a list of values or { name, values }' },
);

/** Why an override key is unusable, or null. */
function keyProblem(key: string): string | null {
  if (!KEY.test(key)) return `'${key}' is not a key like a.b[0].c`;
  // The grid names every run; a `name` override would be replaced anyway.
  if (key === 'name')
    return 'the run name comes from the grid (its name, labels and axes), not from an override';
  return null;
}

function checkSet(
  set: z.output<typeof setSchema> | undefined,
  path: PropertyKey[],
  ctx: z.RefinementCtx,
): void {
  if (set === undefined) return;
  const keys = Array.isArray(set)
    ? set.map((s) => (s.includes('=') ? s.slice(0, s.indexOf('=')) : null))
    : Object.keys(set);
  keys.forEach((key, i) => {
    const problem = key === null ? `'${(set as string[])[i]}': expected key=value` : keyProblem(key);
    if (problem !== null)
      ctx.addIssue({ code: 'custom', path: [...path, Array.isArray(set) ? i : key!], message: problem });
  });
}

export const gridSchema = z
  .strictObject({
    /** Prefix of every run name. */
    name: z.string(),
    /** One experiment file (relative to the grid file); its label 'run' stays out of run names. */
    experiment: z.string().min(1).optional(),
    /** label -> experiment file, or { file, set } with overrides of that experiment's runs only. */
    experiments: z.record(z.string(), experimentRefSchema).optional(),
    /** Overrides of every run. */
    set: setSchema.optional(),
    /** key -> values (or { name, values }); the runs are their cartesian product, first axis outermost. */
    axes: z.record(z.string(), axisSchema).optional(),
  })
  .superRefine((g, ctx) => {
    if (!RUN_NAME.test(g.name))
      ctx.addIssue({
        code: 'custom',
        path: ['name'],
        message: `'${g.name}': use letters, digits, '.', '_' and '-' only, not starting with '.' (it starts every run name)`,
      });
    if ((g.experiment === undefined) === (g.experiments === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `give exactly one of experiment (one file) or experiments (label: file); got ${g.experiment === undefined ? 'neither' : 'both'}`,
      });
    if (g.experiments !== undefined && Object.keys(g.experiments).length === 0)
      ctx.addIssue({ code: 'custom', path: ['experiments'], message: 'no experiments' });
    for (const [label, ref] of Object.entries(g.experiments ?? {})) {
      if (!/^[A-Za-z0-9._-]+$/.test(label))
        ctx.addIssue({
          code: 'custom',
          path: ['experiments', label],
          message: `label '${label}': use letters, digits, '.', '_' and '-' only (it is part of run names)`,
        });
      if (typeof ref !== 'string') checkSet(ref.set, ['experiments', label, 'set'], ctx);
    }
    checkSet(g.set, ['set'], ctx);
    if (g.axes !== undefined && Object.keys(g.axes).length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['axes'],
        message: 'no axes (leave axes out for one run per experiment)',
      });
    for (const [key, axis] of Object.entries(g.axes ?? {})) {
      const problem = keyProblem(key);
      if (problem !== null) ctx.addIssue({ code: 'custom', path: ['axes', key], message: problem });
      const values = Array.isArray(axis) ? axis : axis.values;
      if (values.length === 0) ctx.addIssue({ code: 'custom', path: ['axes', key], message: 'no values' });
      if (Array.isArray(axis) || axis.name === undefined) continue;
      if (key === SEED)
        ctx.addIssue({
          code: 'custom',
          path: ['axes', key, 'name'],
          message: 'the seed axis is always s<seed> at the end of run names (the report groups seeds by it)',
        });
      else if (!NAME_CHARS.test(axis.name))
        ctx.addIssue({
          code: 'custom',
          path: ['axes', key, 'name'],
          message: `'${axis.name}': use letters, digits, '.', '_' and '-' only (it is part of run names)`,
        });
    }
  });

export type SweepGrid = z.infer<typeof gridSchema>;

/** One run of a sweep, ready to train. */
export interface SweepRun {
  /** The run name (also the experiment's `name`). */
  name: string;
  /** The experiment's label ('run' for a grid with a single `experiment`). */
  label: string;
  /** Absolute path of the experiment file. */
  file: string;
  /** Every override in the order applied, as `key=value` strings (values as JSON, which YAML reads back). */
  sets: string[];
  /** Axis key -> this run's value (relative paths resolved, as applied). */
  values: Record<string, unknown>;
  /** The experiment's seed after overrides. */
  seed: number;
  /** The validated experiment: loadExperiment(file, sets). */
  experiment: Experiment;
}

/** Reads and validates a grid file; relative paths in it are relative to its folder. */
export function loadGrid(path: string): { grid: SweepGrid; baseDir: string; file: string } {
  const file = resolve(path);
  const grid = parseOrThrow(gridSchema, readConfigFile(file), file);
  return { grid, baseDir: dirname(file), file };
}

type Token = { key: string } | { index: number };

function tokens(key: string): Token[] {
  return [...key.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) =>
    m[2] !== undefined ? { index: Number(m[2]) } : { key: m[1]! },
  );
}

/**
 * `value` with the relative paths it holds under `key` resolved against `baseDir`, as in any config
 * file (a bare teacher.run name stays a run name): the value is placed at `key` in an otherwise empty
 * config and resolveConfigPaths, which knows the path keys, rewrites it there.
 */
function resolvePaths(key: string, value: unknown, baseDir: string): unknown {
  const path = tokens(key);
  const probe: Record<string, unknown> = {};
  let cur: Record<string, unknown> | unknown[] = probe;
  path.forEach((t, i) => {
    const nextToken = path[i + 1];
    const next: unknown =
      nextToken === undefined
        ? structuredClone(value)
        : 'index' in nextToken
          ? []
          : ({} as Record<string, unknown>);
    if ('index' in t) {
      const arr = cur as unknown[];
      while (arr.length < t.index) arr.push(null);
      arr[t.index] = next;
    } else (cur as Record<string, unknown>)[t.key] = next;
    cur = next as Record<string, unknown> | unknown[];
  });
  resolveConfigPaths(probe, baseDir);
  let out: unknown = probe;
  for (const t of path) out = (out as Record<string | number, unknown>)['index' in t ? t.index : t.key];
  return out;
}

/** `value` as JSON text (YAML reads it back with its type); non-JSON values are errors naming `what`. */
function jsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, (_k, v: unknown) => {
      if (typeof v === 'number' && !Number.isFinite(v))
        throw new RetortError(`${what}: ${v} is not a finite number`);
      return v;
    });
  } catch (e) {
    if (e instanceof RetortError) throw e;
    throw new RetortError(`${what}: not a JSON value (${(e as Error).message})`);
  }
  if (text === undefined) throw new RetortError(`${what}: no value`);
  return text;
}

/** [key, value] pairs of an override section; "key=value" strings have their value read as YAML, as --set does. */
function pairs(set: SweepGrid['set']): [string, unknown][] {
  if (set === undefined) return [];
  if (!Array.isArray(set)) return Object.entries(set);
  return set.map((s) => {
    const eq = s.indexOf('=');
    return [s.slice(0, eq), parseYaml(s.slice(eq + 1)) as unknown];
  });
}

const clean = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');

/** The name part of an axis value (see the file header). */
function namePart(name: string, value: unknown, index: number): string {
  if (typeof value === 'number') return `${name}${/\d$/.test(name) ? '-' : ''}${value}`;
  if (typeof value === 'string' || typeof value === 'boolean')
    return name === '' ? String(value) : `${name}-${value}`;
  return `${name}${index + 1}`;
}

interface Axis {
  key: string;
  name: string;
  values: unknown[];
}

/**
 * Expands a grid (a file, or an object whose relative paths are relative to `opts.baseDir`, default
 * the working directory) into its runs: the first axis outermost, the experiments innermost. Errors
 * name `opts.where` (default: the grid file, or 'sweep grid') and, for a run, its name.
 */
export function expandGrid(
  grid: SweepGrid | string,
  opts: { baseDir?: string; where?: string } = {},
): SweepRun[] {
  let g: SweepGrid;
  let baseDir: string;
  let where: string;
  if (typeof grid === 'string') {
    const loaded = loadGrid(grid);
    ({ grid: g, baseDir } = loaded);
    where = opts.where ?? loaded.file;
  } else {
    where = opts.where ?? 'sweep grid';
    // An object from code has not met the schema yet.
    g = parseOrThrow(gridSchema, grid, where);
    baseDir = resolve(opts.baseDir ?? '.');
  }
  const experiments =
    g.experiment !== undefined
      ? [{ label: 'run', file: g.experiment, set: [] as [string, unknown][] }]
      : Object.entries(g.experiments!).map(([label, ref]) =>
          typeof ref === 'string'
            ? { label, file: ref, set: [] }
            : { label, file: ref.file, set: pairs(ref.set) },
        );
  const axes: Axis[] = Object.entries(g.axes ?? {}).map(([key, a]) => {
    const last = tokens(key).filter((t): t is { key: string } => 'key' in t);
    const name = Array.isArray(a) || a.name === undefined ? last.at(-1)!.key : a.name;
    return { key, name, values: Array.isArray(a) ? a : a.values };
  });
  const common = pairs(g.set);
  // Index tuples of the cartesian product, the last axis varying fastest.
  let combos: number[][] = [[]];
  for (const axis of axes) combos = combos.flatMap((c) => axis.values.map((_, i) => [...c, i]));

  // Names and overrides of every run first, so a name collision is reported before any file loads.
  const planned: Omit<SweepRun, 'seed' | 'experiment'>[] = [];
  const seen = new Map<string, string>();
  for (const combo of combos)
    for (const exp of experiments) {
      const chosen = axes.map((a, i) => ({ axis: a, index: combo[i]!, value: a.values[combo[i]!] }));
      const parts = [g.name, ...(g.experiment === undefined ? [exp.label] : [])];
      for (const c of chosen)
        if (c.axis.key !== SEED) parts.push(clean(namePart(c.axis.name, c.value, c.index)));
      const seedAxis = chosen.find((c) => c.axis.key === SEED);
      if (seedAxis !== undefined) parts.push(clean(`s${String(seedAxis.value)}`));
      const name = parts.join('-');
      const described = [exp.label, ...chosen.map((c) => `${c.axis.key}=${jsonText(c.value, where)}`)].join(
        ', ',
      );
      const other = seen.get(name);
      if (other !== undefined)
        throw new RetortError(
          `${where}: two runs would both be named '${name}': (${other}) and (${described}); give the values distinct names (an axis { name, values }, or values that differ in letters, digits, '.', '_' or '-')`,
        );
      seen.set(name, described);
      try {
        checkRunName(name);
      } catch (e) {
        throw new RetortError(`${where}: ${(e as Error).message}`);
      }
      const values: Record<string, unknown> = {};
      const overrides: [string, unknown][] = [
        ...common,
        ...exp.set,
        ...chosen.map((c): [string, unknown] => [c.axis.key, c.value]),
        ['name', name],
      ];
      const sets = overrides.map(([key, value]) => {
        const applied = resolvePaths(key, value, baseDir);
        if (chosen.some((c) => c.axis.key === key)) values[key] = applied;
        return `${key}=${jsonText(applied, `${where}: run ${name}: ${key}`)}`;
      });
      planned.push({ name, label: exp.label, file: resolve(baseDir, exp.file), sets, values });
    }
  return planned.map((run) => {
    let experiment: Experiment;
    try {
      experiment = loadExperiment(run.file, run.sets);
    } catch (e) {
      if (!(e instanceof RetortError)) throw e;
      throw new RetortError(`${where}: run ${run.name}: ${e.message}`, {
        file: e.file ?? run.file,
        cause: e,
      });
    }
    return { ...run, seed: experiment.seed, experiment };
  });
}

/** Display text of an axis value: strings as they are, anything else as compact JSON. */
function show(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
}

/**
 * The `--dry-run` listing: a header, then one line per run with its name, label, axis values (one
 * column per axis key, the seed axis left to the seed column) and seed, in aligned columns.
 */
export function gridTable(runs: readonly SweepRun[]): string {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.values)))].filter((k) => k !== SEED);
  const rows = [
    ['name', 'label', ...keys, 'seed'],
    ...runs.map((r) => [
      r.name,
      r.label,
      ...keys.map((k) => (k in r.values ? show(r.values[k]) : '')),
      String(r.seed),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `--only`: the runs a comma-separated filter keeps. A term is an experiment label (`kd`), a run
 * name, or `key=value` on an axis key or `seed` (`seed=1`, `optimizer.lr=0.05`). Terms of one kind
 * (all labels and names; each key) widen the choice, kinds narrow it, so `kd,dkd,seed=1` is KD and
 * DKD at seed 1. A term that matches no run of the grid is an error naming it (a typo must not
 * quietly shrink a table), as is a filter that keeps nothing.
 */
export function filterRuns(runs: readonly SweepRun[], only: string, where = '--only'): SweepRun[] {
  const terms = only
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  if (terms.length === 0) throw new Error(`${where}: give labels, run names or key=value terms`);
  const keyOf = (r: SweepRun, key: string): string | undefined =>
    key === SEED ? String(r.seed) : key in r.values ? show(r.values[key]) : undefined;
  const names = new Set<string>();
  const byKey = new Map<string, Set<string>>();
  for (const t of terms) {
    const eq = t.indexOf('=');
    if (eq < 0) {
      if (!runs.some((r) => r.label === t || r.name === t)) {
        const labels = [...new Set(runs.map((r) => r.label))].join(', ');
        throw new Error(
          `${where}: '${t}' is no experiment label or run name of this grid (labels: ${labels})`,
        );
      }
      names.add(t);
      continue;
    }
    const key = t.slice(0, eq);
    const value = t.slice(eq + 1);
    const seen = [...new Set(runs.map((r) => keyOf(r, key)).filter((v) => v !== undefined))];
    if (seen.length === 0) {
      const keys = new Set([SEED, ...runs.flatMap((r) => Object.keys(r.values))]);
      throw new Error(`${where}: '${key}' is no axis key of this grid (keys: ${[...keys].join(', ')})`);
    }
    if (!seen.includes(value))
      throw new Error(`${where}: no run has ${key}=${value} (values: ${seen.join(', ')})`);
    if (!byKey.has(key)) byKey.set(key, new Set());
    byKey.get(key)!.add(value);
  }
  const kept = runs.filter(
    (r) =>
      (names.size === 0 || names.has(r.label) || names.has(r.name)) &&
      [...byKey].every(([key, values]) => values.has(keyOf(r, key) ?? '')),
  );
  if (kept.length === 0) throw new Error(`${where}: '${only}' keeps no run of this grid`);
  return kept;
}
