/**
 * The contract between a distillation scheme and the experiment runner. A scheme decides who is
 * trained, who is frozen, what each step computes and what is saved besides the run's model; the
 * runner (run/experiment.ts) does what every scheme shares — data, run folder, seeding, the
 * teacher, the final test evaluation and results.json — and never asks which scheme it runs.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { z } from 'zod';
import type { Experiment, LossEntry, OptimizerConfig, ScheduleConfig } from '../../config/experiment.js';
import type { ExperimentData } from '../../data/build.js';
import type { ModelConfig } from '../../models/configured.js';
import type { Teacher } from '../../teachers/types.js';
import type { EpochRecord } from '../../train/trainer.js';
import type { AnyLossDescriptor, DataInfo, PaperRef } from '../losses/types.js';

/** Role -> layer name, per network. */
export interface TapBinding {
  student: Record<string, string>;
  teacher: Record<string, string>;
}

/** One configured loss term. */
export interface Term {
  /** Unique label for logs ('kd', or 'kd#2' when a method appears twice). */
  label: string;
  descriptor: AnyLossDescriptor;
  config: unknown;
  weight: number;
  taps: TapBinding;
}

/** One stage of the experiment with its loss terms parsed. */
export interface ParsedStage {
  name: string;
  epochs: number;
  losses: LossEntry[];
  optimizer?: OptimizerConfig | undefined;
  schedule?: ScheduleConfig | undefined;
  terms: Term[];
}

/** What a scheme's `run` is handed. */
export interface SchemeContext<C> {
  exp: Experiment;
  /** The experiment file (or 'code'), for messages. */
  where: string;
  /** The scheme's options, parsed by its schema. */
  config: C;
  stages: ParsedStage[];
  data: ExperimentData;
  dataInfo: DataInfo;
  /** The run's model: what the runner evaluates on the test split and saves as model.ckpt. */
  student: tfl.LayersModel;
  /** The experiment's teacher, loaded (undefined when it has none). */
  teacher: Teacher | undefined;
  runDir: string;
  runsRoot: string;
  resume: boolean;
  cacheDir: string;
  log: (line: string) => void;
  /** The caller's hook after each epoch of the run's model (RunOptions.onEpoch), with the stage. */
  onEpoch?: ((r: EpochRecord, stage: string) => void) | undefined;
  /** Builds a model of the run's data shape and classes (peers, generations). */
  buildModel(cfg: ModelConfig): Promise<tfl.LayersModel>;
}

/** What a scheme's `run` returns; `extra` lands in results.json beside the common fields. */
export interface SchemeOutput {
  stages: { name: string; epochs: number; losses: string[]; seconds: number }[];
  records: EpochRecord[];
  extra?: Record<string, unknown>;
}

export interface SchemeDescriptor<C> {
  /** The name experiment files use (`scheme: { name: dml }`); also the registry key. */
  readonly name: string;
  readonly paper?: PaperRef;
  /** The scheme's own options (strict; `name` is removed before parsing). */
  readonly schema: z.ZodType<C>;
  /** Whether the experiment must, may, or must not name a teacher. */
  readonly teacher: 'required' | 'optional' | 'none';
  /**
   * Checks what needs neither data nor models (loss terms the scheme cannot serve, stages it does
   * not take); runs before the run folder exists, so a refused experiment leaves nothing behind.
   */
  check?(exp: Experiment, config: C, stages: readonly ParsedStage[], where: string): void;
  run(ctx: SchemeContext<C>): Promise<SchemeOutput>;
}

/** Any scheme with its options type forgotten: what the registry holds. */
export type AnySchemeDescriptor = SchemeDescriptor<unknown>;
