/**
 * Runs one experiment file end to end: data, student (and frozen teacher), each stage's losses,
 * optimizer and schedule, the trainer, then a final test evaluation. Everything lands in the run
 * folder: config.json, init.ckpt (the initial weights), metrics.jsonl, checkpoints/, model.ckpt,
 * results.json.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { parseOrThrow } from '../config/errors.js';
import type { Experiment } from '../config/experiment.js';
import { buildData, type DataSplits } from '../data/build.js';
import { BatchLoader } from '../data/loader.js';
import type { DataInfo } from '../distill/losses/types.js';
import { schemeRegistry } from '../distill/scheme-registry.js';
import { parseTerms } from '../distill/schemes/offline.js';
import type { AnySchemeDescriptor, ParsedStage } from '../distill/schemes/types.js';
import { buildConfiguredModel, checkConfiguredModel, modelLabel } from '../models/configured.js';
// Installs the builder of `model: { space, candidate }` (a search space's candidate).
import '../search/candidate-model.js';
import { loadTeacherSource, type TeacherData, teacherDataOf, teacherPredictions } from '../teachers/load.js';
import type { Teacher } from '../teachers/types.js';
import { saveModelWeights } from '../train/checkpoint.js';
import { confusionMatrix } from '../train/metrics.js';
import { prepareRunDir, releaseRunLock, writeResults } from '../train/run-dir.js';
import { type EpochRecord, evaluate, takeRestoredSeconds } from '../train/trainer.js';
import { RetortError } from '../util/errors.js';
import { seedEverything } from '../util/rng.js';

export interface RunOptions {
  /** Folder that holds run folders (default 'runs'). */
  runsRoot?: string;
  force?: boolean;
  resume?: boolean;
  /** Where teacher caches live (default <runsRoot>/.cache/teacher). */
  cacheDir?: string;
  log?: (line: string) => void;
  /**
   * Called after every epoch of the run's model with its record (loss terms, accuracy, lr, img/s,
   * seconds) and the stage's name: a hook for custom loggers (TensorBoard writers, dashboards).
   * metrics.jsonl and metrics.csv in the run folder hold the same records.
   */
  onEpoch?: (r: EpochRecord, stage: string) => void;
  /** Train and test splits from code, for `data.dataset: code` (see arrayDataset). */
  data?: DataSplits | undefined;
}

export interface RunResults {
  name: string;
  runDir: string;
  model: string;
  params: number;
  teacher?: { model: string; params: number; testTop1: number };
  stages: { name: string; epochs: number; losses: string[]; seconds: number }[];
  testTop1: number;
  testTop5: number;
  testLoss: number;
  /** confusion[t][p]: test images of class t the model called p. */
  confusion?: number[][];
  /** Class names in label order, when the dataset has them. */
  classNames?: string[];
  /** % of test images where the model's top-1 class is the teacher's (runs with a teacher). */
  teacherAgreement?: number;
  /**
   * Wall seconds from the start of training to its end; a resumed run adds what its earlier
   * processes trained up to the checkpoint it resumed from.
   */
  trainSeconds: number;
  epochs: EpochRecord[];
  /** The scheme, when the experiment names one (offline otherwise). */
  scheme?: string;
  /** What the scheme adds (peers, generations, heads). */
  [extra: string]: unknown;
}

/**
 * The experiment's teacher (zoo run or checkpoint, ONNX file, tfjs model), or undefined when it has
 * none; `taps` are the teacher taps its losses use.
 */
export async function loadTeacher(
  exp: Experiment,
  data: TeacherData,
  runsRoot = 'runs',
  taps: readonly string[] = [],
): Promise<Teacher | undefined> {
  if (!exp.teacher) return undefined;
  return loadTeacherSource(exp.teacher, teacherDataOf(data), { runsRoot, taps });
}

/** The experiment's scheme (offline by default) with its options parsed and checked. */
export function resolveScheme(
  exp: Experiment,
  stages: readonly ParsedStage[],
  where: string,
): { descriptor: AnySchemeDescriptor; config: unknown } {
  const { name, ...params } = exp.scheme ?? { name: 'offline' };
  const descriptor = schemeRegistry.get(name);
  const config = parseOrThrow(descriptor.schema, params, `${where}: scheme (${name})`);
  if (descriptor.teacher === 'required' && exp.teacher === undefined)
    throw new RetortError(`${where}: scheme ${name} needs a 'teacher' section`);
  if (descriptor.teacher === 'none' && exp.teacher !== undefined)
    throw new RetortError(
      `${where}: scheme ${name} trains without a frozen teacher; remove the 'teacher' section (or use scheme offline)`,
    );
  descriptor.check?.(exp, config, stages, where);
  return { descriptor, config };
}

export async function runExperiment(
  exp: Experiment,
  where: string,
  opts: RunOptions = {},
): Promise<RunResults> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const runsRoot = opts.runsRoot ?? 'runs';
  await tf.setBackend('native');
  // Terms are checked before anything slow happens.
  const stages: ParsedStage[] = (
    exp.stages ?? [{ name: 'main', epochs: exp.epochs, losses: exp.losses }]
  ).map((s) => ({
    ...s,
    terms: parseTerms(s.losses, where),
  }));
  const scheme = resolveScheme(exp, stages, where);
  checkConfiguredModel(exp.model, where);
  // A search keeps its state in <runs>/<name>/search/, inside the folder a run of the same name
  // would use (and --force would set aside): the two are refused together.
  if (exp.search !== undefined)
    throw new RetortError(
      `${where}: has a search section, so it is for retort search (the search's winner is written as search/best.yaml, an experiment to train); remove the section to train model ${modelLabel(exp.model)} on its own`,
    );
  // Data is read and checked before the run folder exists: a refused split leaves nothing behind.
  const data = buildData(exp.data, exp.seed, opts.data);
  const runDir = prepareRunDir(runsRoot, exp.name, exp, {
    force: opts.force ?? false,
    resume: opts.resume ?? false,
    log,
  });
  let teacher: Teacher | undefined;
  try {
    seedEverything(exp.seed);
    const student = await buildConfiguredModel(exp.model, {
      inputShape: data.shape,
      numClasses: data.numClasses,
    });
    const teacherTaps = [
      ...new Set(stages.flatMap((s) => s.terms.flatMap((t) => Object.values(t.taps.teacher)))),
    ];
    teacher = await loadTeacher(exp, data, runsRoot, teacherTaps);
    let teacherInfo: RunResults['teacher'];
    let teacherPredicted: Int32Array | undefined;
    if (teacher) {
      const tp = await teacherPredictions(teacher, data.test, data.shape);
      teacherPredicted = tp.predicted;
      const top1 = tp.top1;
      const model = exp.teacher?.model?.name ?? teacher.description;
      teacherInfo = { model, params: teacher.params ?? 0, testTop1: top1 };
      log(`teacher ${teacherInfo.model}: ${teacherInfo.params} params, test top-1 ${top1.toFixed(2)}%`);
    }
    // The student's initial weights, once per run (a resumed run keeps the first start's): what a
    // lottery-ticket search rewinds to (compress stage lottery, rewind 'init').
    const initPath = join(runDir, 'init.ckpt');
    if (!existsSync(initPath))
      saveModelWeights(initPath, student, { kind: 'init', model: exp.model, initOf: exp.name });
    takeRestoredSeconds(runDir); // nothing left over from an earlier attempt in this process
    const t0 = performance.now();
    const dataInfo: DataInfo = {
      // Dataset indices run over the whole split (a validation part included); a stream has none.
      numExamples: data.train instanceof BatchLoader ? data.train.data.count : 0,
      numClasses: data.numClasses,
      batchSize: data.train.batchSize,
      seed: exp.seed,
    };
    const done = await scheme.descriptor.run({
      exp,
      where,
      config: scheme.config,
      stages,
      data,
      dataInfo,
      student,
      teacher,
      runDir,
      runsRoot,
      resume: opts.resume ?? false,
      cacheDir: opts.cacheDir ?? join(runsRoot, '.cache', 'teacher'),
      log,
      onEpoch: opts.onEpoch,
      buildModel: (cfg) => buildConfiguredModel(cfg, { inputShape: data.shape, numClasses: data.numClasses }),
    });
    const results = done.stages;
    const records = done.records;
    // A resumed run: the epochs its earlier processes trained count too.
    const trainSeconds = (performance.now() - t0) / 1000 + takeRestoredSeconds(runDir);
    const test = await evaluate(student, data.test, { predictions: true });
    saveModelWeights(join(runDir, 'model.ckpt'), student, { model: exp.model, experiment: exp.name });
    const predicted = test.predicted!;
    const agreement =
      teacherPredicted?.length === predicted.length
        ? (100 * predicted.filter((p, i) => p === teacherPredicted[i]).length) / Math.max(1, predicted.length)
        : undefined;
    const out: RunResults = {
      name: exp.name,
      runDir,
      model: modelLabel(exp.model),
      params: student.countParams(),
      ...(teacherInfo ? { teacher: teacherInfo } : {}),
      stages: results,
      testTop1: test.top1,
      testTop5: test.top5,
      testLoss: test.loss,
      confusion: confusionMatrix(test.labels!, predicted, data.numClasses),
      ...(data.classNames ? { classNames: [...data.classNames] } : {}),
      ...(agreement !== undefined ? { teacherAgreement: agreement } : {}),
      trainSeconds,
      epochs: records,
      ...(exp.scheme ? { scheme: exp.scheme.name } : {}),
      ...done.extra,
    };
    writeResults(runDir, out);
    log(
      `${exp.name}: test top-1 ${test.top1.toFixed(2)}%, ${out.params} params, ${trainSeconds.toFixed(1)} s -> ${runDir}`,
    );
    return out;
  } catch (e) {
    // A new run that failed before writing anything but its config (a layer a scheme cannot find,
    // a teacher that does not load) leaves no folder behind, so the corrected run needs no --force.
    if (
      !(opts.resume ?? false) &&
      readdirSync(runDir).every((f) => f === 'config.json' || f === 'lock' || f === 'init.ckpt')
    ) {
      releaseRunLock(join(runDir, 'lock'));
      rmSync(runDir, { recursive: true, force: true });
    }
    throw e;
  } finally {
    // The teacher (an onnxruntime session, or a tfjs model) is the run's own: free it.
    teacher?.dispose();
    releaseRunLock(join(runDir, 'lock'));
  }
}
