/**
 * An experiment's teacher cache (distill/teacher-cache.ts) computed by n shard jobs and a merge,
 * for grids of runs spread over processes or machines: the plan says which cache file a run of the
 * experiment would make and reuse, each shard job runs the teacher over its part of the training
 * batches, and the merge writes the file the run itself would have written (byte for byte when the
 * shards ran on machines whose oneDNN picks the same kernels), so the run reuses it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Experiment } from '../config/experiment.js';
import { buildData, type DataSplits } from '../data/build.js';
import { BatchLoader } from '../data/loader.js';
import {
  needsTeacher,
  offlineCacheRefusal,
  parseTerms,
  teacherLayersOf,
} from '../distill/schemes/offline.js';
import {
  type CachedTaps,
  mergeTeacherShards,
  shardBatches,
  teacherCacheKey,
  teacherCacheLayout,
  teacherShardPath,
  writeTeacherShard,
} from '../distill/teacher-cache.js';
import { buildConfiguredModel } from '../models/configured.js';
import type { Teacher } from '../teachers/types.js';
import { RetortError } from '../util/errors.js';
import { seedEverything } from '../util/rng.js';
import { loadTeacher, resolveScheme } from './experiment.js';

export interface TeacherShardOptions {
  /** Folder that holds run folders (a teacher named by its run is found there), as RunOptions. */
  runsRoot: string;
  /** Where teacher caches live (default <runsRoot>/.cache/teacher, as runExperiment). */
  cacheDir?: string;
  /** Train and test splits from code, for `data.dataset: code` (RunOptions.data). */
  data?: DataSplits | undefined;
  /** Progress lines (none by default). */
  log?: (line: string) => void;
}

/** The teacher cache a run of an experiment makes (its offline scheme's first teacher stage). */
export interface TeacherCachePlan {
  /** 32 hex digits (teacherCacheKey). */
  key: string;
  /** The cache file, <cacheDir>/<key>.ckpt. */
  path: string;
  cacheDir: string;
  /** The data and preprocessing key (ExperimentData.key). */
  dataKey: string;
  /** The stage whose teacher taps are cached: the first whose losses read the teacher. */
  stage: string;
  /** Teacher taps whose features are cached (empty: logits only). */
  layers: string[];
  /** Why the stage's taps are not cached (over the size limit), or null. */
  featureRefusal: string | null;
  numClasses: number;
  /** Rows of the cache: examples in the training split's dataset. */
  size: number;
  /** Batches of the plain training loader (what shards divide) and their size. */
  batches: number;
  batchSize: number;
  /** The teacher, for logs. */
  teacher: string;
}

/** A plan with what computing it needs; the teacher is the caller's to dispose. */
interface OpenPlan {
  plan: TeacherCachePlan;
  teacher: Teacher;
  plain: BatchLoader;
  taps: CachedTaps;
}

/**
 * What trainStages (distill/schemes/offline.ts) caches for `exp`, with the data, teacher and taps
 * runExperiment gives it, or why it caches nothing.
 */
async function openPlan(
  exp: Experiment,
  where: string,
  opts: TeacherShardOptions,
): Promise<OpenPlan | string> {
  const scheme = exp.scheme?.name ?? 'offline';
  if (exp.teacher === undefined) return 'the experiment has no teacher';
  // Other schemes cache other teachers (assistants, generations) or none.
  if (scheme !== 'offline') return `scheme ${scheme}: only the offline scheme's teacher cache is planned`;
  if (!exp.cacheTeacher) return 'cacheTeacher is false';
  // As runExperiment: terms and scheme are checked before anything slow happens.
  const stages = (exp.stages ?? [{ name: 'main', epochs: exp.epochs, losses: exp.losses }]).map((s) => ({
    ...s,
    terms: parseTerms(s.losses, where),
  }));
  resolveScheme(exp, stages, where);
  const stage = stages.find((s) => s.terms.some(needsTeacher));
  if (stage === undefined) return 'no loss reads the teacher';
  const data = buildData(exp.data, exp.seed, opts.data);
  const plain = data.trainPlain;
  const refusal = offlineCacheRefusal(exp, plain);
  if (refusal !== null || !(plain instanceof BatchLoader)) return refusal ?? 'the training split is streamed';
  // The backend a run computes the cache on: another one gives other bits.
  await tf.setBackend('native');
  // As runExperiment, the seeded student is built before the teacher loads: a teacher with
  // automatically named layers (numbered per process: the zoo's mlp input) then has the topology,
  // so the key, it has in a run in a fresh process.
  seedEverything(exp.seed);
  const student = await buildConfiguredModel(exp.model, {
    inputShape: data.shape,
    numClasses: data.numClasses,
  });
  student.dispose();
  // Loaded with every stage's taps, as runExperiment loads it (an ONNX teacher binds them now).
  const allTaps = [...new Set(stages.flatMap((s) => teacherLayersOf(s.terms)))];
  const teacher = await loadTeacher(exp, data, opts.runsRoot, allTaps);
  if (teacher === undefined) return 'the experiment has no teacher';
  try {
    // buildOfflineTask's teacherTaps for the stage.
    const layers = teacherLayersOf(stage.terms);
    const taps: CachedTaps = { view: teacher.tap(layers), layers };
    const lay = teacherCacheLayout(teacher, plain.data.count, taps);
    const key = teacherCacheKey(teacher, data.key, lay.layers);
    const cacheDir = opts.cacheDir ?? join(opts.runsRoot, '.cache', 'teacher');
    const plan: TeacherCachePlan = {
      key,
      path: join(cacheDir, `${key}.ckpt`),
      cacheDir,
      dataKey: data.key,
      stage: stage.name,
      layers: lay.layers,
      featureRefusal: lay.featureRefusal,
      numClasses: lay.numClasses,
      size: plain.data.count,
      batches: plain.length,
      batchSize: plain.batchSize,
      teacher: teacher.description,
    };
    return { plan, teacher, plain, taps };
  } catch (e) {
    teacher.dispose();
    throw e;
  }
}

/**
 * The teacher cache a run of `exp` would make, or null when it would cache none: no teacher,
 * cacheTeacher false, a scheme other than offline, no loss that reads the teacher, augmented
 * (random crops, flips) or streamed training data. Loads the data and the teacher (then frees it).
 */
export async function teacherCachePlan(
  exp: Experiment,
  where: string,
  opts: TeacherShardOptions,
): Promise<TeacherCachePlan | null> {
  const o = await openPlan(exp, where, opts);
  if (typeof o === 'string') return null;
  o.teacher.dispose();
  return o.plan;
}

/** openPlan for a job that needs a cache: refuses, saying why, when `exp` caches none. */
async function openOrRefuse(exp: Experiment, where: string, opts: TeacherShardOptions, job: string) {
  const o = await openPlan(exp, where, opts);
  if (typeof o === 'string')
    throw new RetortError(`${where}: ${job}: the experiment caches no teacher outputs (${o})`);
  return o;
}

/**
 * Computes shard `i` of `n` (0 <= i < n) of `exp`'s teacher cache and writes it to
 * <cacheDir>/<key>.shard-<i>-of-<n>.ckpt. Does nothing when the merged cache or this shard exists
 * (both are written atomically, so one that exists is whole). Returns the path of the file that
 * holds the shard's rows: the shard, or the merged cache.
 */
export async function runTeacherShard(
  exp: Experiment,
  where: string,
  i: number,
  n: number,
  opts: TeacherShardOptions,
): Promise<string> {
  shardBatches(0, i, n); // checks i and n before the data and the teacher load
  const log = opts.log ?? (() => {});
  const { plan, teacher, plain, taps } = await openOrRefuse(exp, where, opts, `teacher shard ${i} of ${n}`);
  try {
    if (existsSync(plan.path)) {
      log(`teacher cache ${plan.path} exists: shard ${i} of ${n} skipped`);
      return plan.path;
    }
    const shard = teacherShardPath(plan.cacheDir, plan.key, i, n);
    if (existsSync(shard)) {
      log(`teacher cache shard ${shard} exists: skipped`);
      return shard;
    }
    const { from, to } = shardBatches(plan.batches, i, n);
    const t0 = performance.now();
    const path = await writeTeacherShard(teacher, plain, plan.dataKey, plan.cacheDir, i, n, taps);
    log(
      `teacher cache shard ${i} of ${n}: batches ${from}..${to - 1} of ${plan.batches} in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${path}`,
    );
    return path;
  } finally {
    teacher.dispose();
  }
}

/**
 * Merges the `n` shards of `exp`'s teacher cache (runTeacherShard for i = 0..n-1) into the cache
 * file a run of `exp` reuses, and deletes them; does nothing when that file exists. A missing or
 * foreign shard is a RetortError naming the file. Returns the cache file's path.
 */
export async function mergeTeacherCache(
  exp: Experiment,
  where: string,
  n: number,
  opts: TeacherShardOptions,
): Promise<string> {
  const log = opts.log ?? (() => {});
  const { plan, teacher, plain } = await openOrRefuse(exp, where, opts, `teacher cache merge of ${n} shards`);
  // The merge needs the teacher only for the key: free it before reading the shards.
  teacher.dispose();
  if (existsSync(plan.path)) {
    log(`teacher cache ${plan.path} exists: merge skipped`);
    return plan.path;
  }
  const path = mergeTeacherShards({
    plain,
    dataKey: plan.dataKey,
    layers: plan.layers,
    dir: plan.cacheDir,
    key: plan.key,
    n,
  });
  log(`teacher cache: ${n} shards merged into ${path}`);
  return path;
}
