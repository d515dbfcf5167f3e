/**
 * Retort's public API: the one entry a user (and bench/) imports. Everything not exported here is
 * internal and may change between versions.
 *
 * Importing this module registers the `native` tfjs backend (oneDNN addon; it falls back to the
 * JavaScript kernels kernel by kernel when the addon is not built). Images are NHWC throughout:
 * `[N, H, W, C]` float32, normalized as the dataset's `mean`/`std` say.
 *
 * ```js
 * import { train, distill } from 'retort-kd';
 * const teacher = await train({ name: 't', model: { name: 'resnet20' }, epochs: 5 });
 * const student = await distill({
 *   name: 's', model: { name: 'resnet8' }, teacher: { model: { name: 'resnet20' }, run: teacher.runDir },
 *   losses: [{ name: 'ce', weight: 0.1 }, { name: 'kd', weight: 0.9, T: 4 }],
 * });
 * console.log(student.testTop1);
 * ```
 */
import 'retort-kd-native';
import type { z } from 'zod';
import { parseOrThrow } from './config/errors.js';
import { type Experiment, experimentSchema } from './config/experiment.js';
import { loadExperiment } from './config/load.js';
import { resolveConfigPaths } from './config/paths.js';
import { schemeRegistry } from './distill/scheme-registry.js';
import { type RunOptions, type RunResults, runExperiment } from './run/experiment.js';
import { RetortError } from './util/errors.js';

// ---- the compute backend
export { describeCpu, nativeAvailable, nativeIsa, nativeUnavailableReason } from 'retort-kd-native';
export { clusterModel, withClusterFinetune } from './compress/cluster-model.js';
export { factorizeModel } from './compress/lowrank-model.js';
// ---- compression stages
export { MaskSet, magnitudeMasks, prunableKernels } from './compress/prune/magnitude.js';
export { sparsityAt } from './compress/prune/schedule.js';
export { pruneChannels } from './compress/prune/structured.js';
export { withActQat } from './compress/quantize/act-qat.js';
export { withWeightQat } from './compress/quantize/qat.js';
// ---- configuration
export { formatIssues } from './config/errors.js';
export {
  dataSchema,
  type Experiment,
  experimentSchema,
  type LossEntry,
  modelSchema,
  optimizerSchema,
  scheduleSchema,
  teacherSchema,
} from './config/experiment.js';
export { applyOverride, loadExperiment, readConfigFile, readConfigMapping } from './config/load.js';
export { runFolder } from './config/paths.js';
// ---- data
export {
  buildData,
  type DataConfig,
  type DataSplits,
  type ExperimentData,
  type PairedSplits,
} from './data/build.js';
export { loadCifar } from './data/cifar.js';
export { loadCsv } from './data/csv.js';
export {
  arrayDataset,
  type ImageDataset,
  itemPixels,
  type LazyPixels,
  type MemoryDataset,
  validateDataset,
} from './data/dataset.js';
export { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadIdxSplit } from './data/fashion-mnist.js';
export { readIdx } from './data/idx.js';
export { type ImageFolderOptions, loadImageFolder } from './data/image-folder.js';
export { type Batch, BatchLoader, type Loader, type LoaderOptions, takeBatches } from './data/loader.js';
export {
  type BatchStreamSpec,
  batchStream,
  type StreamBatch,
  type StreamDataset,
  StreamLoader,
} from './data/stream.js';
// ---- distillation: the loss registry (register your own method) and the offline scheme
export { adversarial, adversarialLoss, reverseGradient } from './distill/losses/adversarial.js';
export { ce, crossEntropy } from './distill/losses/ce.js';
export { tfKd, tfKdLoss } from './distill/losses/tf-kd.js';
export type {
  AnyLossDescriptor,
  LossContext,
  LossDescriptor,
  LossNeeds,
  NetOutputs,
  PaperRef,
  Parts,
  TapNeeds,
} from './distill/losses/types.js';
export { lossRegistry, registerLoss } from './distill/registry.js';
export { registerScheme, schemeRegistry } from './distill/scheme-registry.js';
export { type BornAgainConfig, bornAgain } from './distill/schemes/born-again.js';
export { type ByotConfig, byot, byotHead, earlyExit } from './distill/schemes/byot.js';
export { bnStatLoss, type DataFreeConfig, dataFree } from './distill/schemes/data-free.js';
export { type DmlConfig, dml, mutualLoss } from './distill/schemes/dml.js';
export {
  type MultiTeacherConfig,
  mixtureLogits,
  multiTeacher,
  teacherWeights,
} from './distill/schemes/multi-teacher.js';
export {
  buildOfflineTask,
  needsTeacher,
  type OfflineTask,
  offline,
  parseTerms,
  trainStages,
} from './distill/schemes/offline.js';
export { ensembleTop1, type SideRun, saveSideRun } from './distill/schemes/outputs.js';
export type {
  AnySchemeDescriptor,
  ParsedStage,
  SchemeContext,
  SchemeDescriptor,
  SchemeOutput,
} from './distill/schemes/types.js';
export {
  type CachedTaps,
  mergeTeacherShards,
  shardBatches,
  TeacherCache,
  type TeacherCacheLayout,
  type TeacherShardRows,
  teacherCacheKey,
  teacherCacheLayout,
  teacherShardPath,
  teacherShardRows,
  writeTeacherShard,
} from './distill/teacher-cache.js';
export { type OnnxPtqOptions, type OnnxPtqResult, quantizeOnnx } from './export/onnx/ptq.js';
export { INT8_TARGETS, type Int8Target, targetNotice, weightQmax } from './export/onnx/target.js';
// ---- exports and measurements
export { calibrateRanges, exportOnnx, type OnnxExportOptions } from './export/onnx.js';
export { encodeBundle, loadBundle, type RtzEncoding, writeBundle } from './export/rtz.js';
export { exportTfjs, loadTfjs, type TfjsExportOptions } from './export/tfjs.js';
export { type FileSize, filesTable, measureFiles } from './measure/files.js';
export { int8Saturation, type LayerSaturation } from './measure/int8-saturation.js';
export { measureLatency, measureOrtLatencies, measureOrtLatency } from './measure/latency.js';
export { type ModelStats, modelStats, statsTable } from './measure/model-stats.js';
export { checkOnnx, type OnnxCheck } from './measure/onnx-check.js';
// ---- models and taps
export { withZeroInit } from './models/common.js';
export { type BuildOptions, buildModel, modelTaps, type ZooEntry, zoo } from './models/index.js';
export { importOnnx, type OnnxImport, type OnnxImportOptions } from './models/onnx-import.js';
export { loadStateDict, readTorchStateDict, type TorchTensor } from './models/pytorch/state-dict.js';
export { type ResNetOptions, resnet } from './models/resnet.js';
export { type PipelineConfig, pipelineSchema, runPipeline, type StageReport } from './run/compress.js';
export { loadPipelineInputs, type PipelineInputs } from './run/compress-inputs.js';
// ---- runs (what the CLI calls)
export { loadTeacher, type RunOptions, type RunResults, runExperiment } from './run/experiment.js';
export { loadRun } from './run/load.js';
// ---- student search: `retort search` (candidates trained as sweep jobs; Pareto front, best.yaml)
export {
  type LoadedSearch,
  loadSearch,
  type StudentSearchOptions,
  type StudentSearchResult,
  search,
} from './run/search.js';
// ---- sweeps: grids of runs on local worker processes or BullMQ workers across machines
export {
  planJobs,
  runLocal,
  type SweepHandle,
  type SweepOptions,
  type SweepSummary,
  storeStatus,
  sweep,
  sweepTable,
} from './run/sweep.js';
export { expandGrid, gridTable, loadGrid, type SweepGrid, type SweepRun } from './run/sweep-grid.js';
export { executeJob, type JobOutcome, type JobProgress, type SweepJob, spawnJob } from './run/sweep-job.js';
export {
  queueStatus,
  runWorker,
  type SubmitResult,
  submitJobs,
  type WorkerOptions,
} from './run/sweep-queue.js';
export { DirStore, openStore, type RunState, type RunStore } from './run/sweep-store.js';
export {
  mergeTeacherCache,
  runTeacherShard,
  type TeacherCachePlan,
  type TeacherShardOptions,
  teacherCachePlan,
} from './run/teacher-shards.js';
// ---- student search: spaces, the latency table, the search strategies
export { candidateCost, modelCost } from './search/candidate-cost.js';
export {
  type Evaluate,
  type Evaluation,
  resumeSearch,
  runSearch,
  type SearchOptions,
  type SearchResult,
  type SearchState,
} from './search/evolution.js';
export { checkTable, summarizeErrors } from './search/latency-check.js';
export {
  DEFAULT_LATENCY_SETTINGS,
  fitConstantPerUnit,
  fixedKey,
  LatencyTable,
  type MeasureFn,
  settingId,
} from './search/latency-table.js';
export { parseSearchConfig, type SearchConfig, searchConfigSchema } from './search/search-config.js';
export {
  best,
  type Constraints,
  type Cost,
  type HistoryEntry,
  paretoFront,
} from './search/search-history.js';
export { searchSpace, spaceSchema } from './search/space-config.js';
export { registerSpace, spaceByName, spaceNames } from './search/spaces/registry.js';
export type { SpaceDescriptor } from './search/spaces/types.js';
export { type TappedModel, tapModel } from './taps/taps.js';
// ---- teachers: a tfjs model in this process, an ONNX file (onnxruntime), a tfjs model folder
export { layersTeacher } from './teachers/layers.js';
export { loadTeacherSource, teacherTop1 } from './teachers/load.js';
export { type OnnxTeacherConfig, onnxTeacher } from './teachers/onnx.js';
export { loadLayersModelFile, tfjsTeacher } from './teachers/tfjs.js';
export type { Teacher, TeacherView } from './teachers/types.js';
export { loadCheckpoint, loadModelWeights, saveCheckpoint, saveModelWeights } from './train/checkpoint.js';
export { makeOptimizer, makeSchedule } from './train/from-config.js';
export { Adam, type AdamConfig, SGD, type SgdConfig } from './train/optimizers.js';
export { lrAt, type Schedule } from './train/schedule.js';
// ---- training
export { type EpochRecord, evaluate, type FitOptions, fit, type TrainTask } from './train/trainer.js';
export { rowArgmax } from './util/argmax.js';
export { writeFileAtomic } from './util/atomic.js';
export { RetortError } from './util/errors.js';
export { seedEverything } from './util/rng.js';

/** An experiment as a user writes it (defaults not yet applied), or the path of a YAML/JSON file. */
export type ExperimentInput = z.input<typeof experimentSchema> | string;

export interface TrainOptions extends RunOptions {
  /** `key=value` overrides, as `--set` on the command line (only with a config path). */
  overrides?: readonly string[];
}

function resolveExperiment(
  config: ExperimentInput,
  overrides: readonly string[] = [],
  withData?: unknown,
): {
  exp: Experiment;
  where: string;
} {
  if (typeof config === 'string') return { exp: loadExperiment(config, overrides), where: config };
  if (overrides.length > 0) throw new RetortError('overrides apply to a config file path, not to an object');
  // Splits passed in code make the data section's reader 'code' unless it names one.
  const input =
    withData !== undefined && config.data?.dataset === undefined
      ? { ...config, data: { ...config.data, dataset: 'code' as const } }
      : config;
  // Relative paths in an object are the caller's, relative to the working directory: stored
  // absolute in the run's config.json, so the run loads back from anywhere.
  const copy = structuredClone(input) as Record<string, unknown>;
  resolveConfigPaths(copy, process.cwd());
  return { exp: parseOrThrow(experimentSchema, copy, 'experiment'), where: 'experiment' };
}

/**
 * Trains `config.model` with its losses (cross-entropy by default) into `<runsRoot>/<name>/`:
 * config.json, metrics.jsonl, checkpoints/, model.ckpt, results.json. Resolves to results.json.
 */
export async function train(config: ExperimentInput, opts: TrainOptions = {}): Promise<RunResults> {
  const { exp, where } = resolveExperiment(config, opts.overrides, opts.data);
  return runExperiment(exp, where, opts);
}

/**
 * Distils `config.model` from `config.teacher` (offline: the teacher is frozen) with the listed
 * losses, e.g. `[{ name: 'ce', weight: 0.1 }, { name: 'kd', weight: 0.9, T: 4 }]`. Same run folder
 * and result as `train`; a config without a teacher is refused.
 */
export async function distill(config: ExperimentInput, opts: TrainOptions = {}): Promise<RunResults> {
  const { exp, where } = resolveExperiment(config, opts.overrides, opts.data);
  // Offline distillation needs a teacher; online and self-distillation schemes make their own.
  if (exp.teacher === undefined && schemeRegistry.get(exp.scheme?.name ?? 'offline').teacher !== 'none')
    throw new RetortError(
      `${where}: distill needs a 'teacher' section (or a scheme that makes its own: dml, byot, born-again, multi-teacher)`,
    );
  return runExperiment(exp, where, opts);
}

/**
 * Writes one self-contained HTML report of run folders (or folders of runs) to `opts.out`, with each
 * figure also as an SVG (and a PNG with `png: true`) in `<name>-figures/` beside it: curves per run,
 * an overlay and a table for several, the confusion matrix and teacher agreement, and a compression
 * run's accuracy against size, MACs and latency. The charting library loads on the first call.
 */
export async function writeReport(
  dirs: readonly string[],
  opts: import('./report/report.js').ReportOptions,
): Promise<import('./report/report.js').ReportResult> {
  const m = await import('./report/report.js');
  return m.writeReport(dirs, opts);
}
