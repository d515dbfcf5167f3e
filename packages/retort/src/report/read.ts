/**
 * Reading run folders for reports: a training run (results.json with per-epoch records, written by
 * `retort train` / `distill` / `demo`) or a compression run (results.json with per-stage reports,
 * written by `retort compress`). Only JSON is read: no model is loaded, so a report of many runs
 * takes seconds.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { EpochRecord } from '../train/trainer.js';
import { RetortError } from '../util/errors.js';

/** One epoch as metrics.jsonl / results.json record it (the fields a report reads). */
export type ReportEpoch = Pick<
  EpochRecord,
  | 'epoch'
  | 'lr'
  | 'trainLoss'
  | 'terms'
  | 'trainTop1'
  | 'valLoss'
  | 'valTop1'
  | 'valSplit'
  | 'seconds'
  | 'imgPerSec'
>;

export interface TrainRun {
  kind: 'train';
  dir: string;
  name: string;
  model: string;
  params: number;
  teacher?: { model: string; params: number; testTop1: number };
  scheme?: string;
  testTop1: number;
  testTop5: number;
  trainSeconds: number;
  epochs: ReportEpoch[];
  confusion?: number[][];
  classNames?: string[];
  teacherAgreement?: number;
}

/** One stage of a compression run (run/compress.ts StageReport, the fields a report reads). */
export interface CompressStage {
  stage: string;
  testTop1: number;
  params: number;
  macs: number;
  bytes: { fp32: number; int8: number; sparse: number; clustered: number | null };
  onnx?: { format: string; bytes: number; top1: number; latencyB1Ms: number; latencyB64Ms: number };
}

export interface CompressRun {
  kind: 'compress';
  dir: string;
  name: string;
  stages: CompressStage[];
}

export type ReportRun = TrainRun | CompressRun;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Reads one run folder; a folder without results.json, or with one of neither kind, is refused. */
export function readRun(dir: string): ReportRun {
  const file = join(dir, 'results.json');
  if (!existsSync(file))
    throw new RetortError(`retort report: ${file} not found (is ${dir} a finished run?)`);
  let r: unknown;
  try {
    r = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RetortError(`retort report: ${file} is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(r)) throw new RetortError(`retort report: ${file} is not a results object`);
  const name = typeof r['name'] === 'string' ? r['name'] : basename(resolve(dir));
  const stages = r['stages'];
  if (
    Array.isArray(stages) &&
    stages.length > 0 &&
    isObject(stages[0]) &&
    typeof stages[0]['macs'] === 'number'
  )
    return { kind: 'compress', dir, name, stages: stages as CompressStage[] };
  if (!Array.isArray(r['epochs']) || typeof r['testTop1'] !== 'number')
    throw new RetortError(
      `retort report: ${file} is neither a training run (epochs, testTop1) nor a compression run (stages with macs)`,
    );
  const run: TrainRun = { kind: 'train', dir, ...(r as Omit<TrainRun, 'kind' | 'dir'>), name };
  // Runs from before epoch records named their split measured it on the test split when the
  // experiment had no validation part (config.json's data.valFraction 0).
  if (run.epochs.some((e) => e.valTop1 !== undefined && e.valSplit === undefined)) {
    const cfg = join(dir, 'config.json');
    let split: 'validation' | 'test' = 'validation';
    try {
      const c = JSON.parse(readFileSync(cfg, 'utf8')) as { data?: { valFraction?: number } };
      if ((c.data?.valFraction ?? 0) === 0) split = 'test';
    } catch {
      // No readable config: keep 'validation', the field's meaning.
    }
    run.epochs = run.epochs.map((e) => (e.valSplit === undefined ? { ...e, valSplit: split } : e));
  }
  return run;
}

/**
 * The run folders named by `paths`: each path is a run folder, or a folder of run folders (its
 * direct subfolders that hold results.json, in name order), e.g. `retort report runs`.
 */
export function expandRunDirs(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (!existsSync(p) || !statSync(p).isDirectory())
      throw new RetortError(`retort report: ${p} is not a folder (give run folders, or a folder of them)`);
    if (existsSync(join(p, 'results.json'))) {
      out.push(p);
      continue;
    }
    const subs = readdirSync(p, { withFileTypes: true })
      .filter((e) => e.isDirectory() && existsSync(join(p, e.name, 'results.json')))
      .map((e) => join(p, e.name))
      .sort();
    if (subs.length === 0)
      throw new RetortError(
        `retort report: ${p} holds no results.json, nor do its subfolders (not a run yet?)`,
      );
    out.push(...subs);
  }
  return out;
}
