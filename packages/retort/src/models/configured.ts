/**
 * The model a config's `model` section names: a zoo entry (`name`), a builder exported by the
 * user's own module (`module: ./my-model.js`, `export: build`), called with the input shape, class
 * count, seed and the section's options, returning a tfjs-layers model (or a promise of one), or a
 * point of a student search space (`space: resnet`, `candidate: { blocks: [1, 2, 1], ... }`), built
 * by that space. Its layers are tapped by name like a zoo model's, so feature methods need no change
 * to user code.
 */
import { pathToFileURL } from 'node:url';
import * as tfl from '@tensorflow/tfjs-layers';
import { RetortError } from '../util/errors.js';
import type { ModelTaps } from './common.js';
import { type BuildOptions, buildModel, modelTaps } from './index.js';

export interface ModelConfig {
  name?: string | undefined;
  module?: string | undefined;
  export?: string | undefined;
  /** A search space's name, with `candidate` its genes. */
  space?: string | undefined;
  candidate?: Readonly<Record<string, unknown>> | undefined;
  options: Record<string, number | string | boolean>;
}

/** One candidate of a search space, checked and bound to its space. */
export interface SpaceCandidateModel {
  /** The space's key of the candidate ('resnet-b1.2.1-w0.75'). */
  readonly key: string;
  build(opts: {
    inputShape: [number, number, number];
    numClasses: number;
    seed?: number | undefined;
  }): tfl.LayersModel;
  /** Its feature taps by layer name; undefined when the space declares none. */
  taps(): ModelTaps | undefined;
}

/** Checks `candidate` against space `space` (errors start with `where`) and binds them. */
export type SpaceModelResolver = (space: string, candidate: unknown, where: string) => SpaceCandidateModel;

let spaceResolver: SpaceModelResolver | undefined;

/**
 * Installs what builds `model: { space, candidate }`. The spaces live in search/, a layer above
 * models/, so search/candidate-model.ts installs itself when loaded; the run layer (and the public
 * API) imports it, so every process that runs an experiment has it.
 */
export function provideSpaceModels(resolve: SpaceModelResolver): void {
  spaceResolver = resolve;
}

/** The candidate a `{ space, candidate }` section names, checked; `where` prefixes errors. */
export function spaceCandidate(cfg: ModelConfig, where = 'model'): SpaceCandidateModel {
  if (cfg.space === undefined) throw new RetortError(`${where}: model names no search space`);
  if (spaceResolver === undefined)
    throw new RetortError(
      `${where}: model.space ${cfg.space}: the search spaces are not loaded (import 'retort-kd', or run the experiment through runExperiment)`,
    );
  return spaceResolver(cfg.space, cfg.candidate, where);
}

/**
 * Throws a RetortError naming the key (for a candidate: model.candidate and the gene) when the
 * section cannot be built; zoo names and modules are checked when they are built.
 */
export function checkConfiguredModel(cfg: ModelConfig, where: string): void {
  if (cfg.space !== undefined) spaceCandidate(cfg, where);
}

/**
 * Where the configured model's features are, by layer name: the zoo entry's taps, the space's taps
 * of a candidate; undefined for a user's module (its layer names are the user's to give).
 */
export function configuredModelTaps(cfg: ModelConfig): ModelTaps | undefined {
  if (cfg.name !== undefined) return modelTaps(cfg.name, cfg.options);
  if (cfg.space !== undefined) return spaceCandidate(cfg).taps();
  return undefined;
}

/** What a user module's builder receives. */
export interface UserBuildOptions {
  inputShape: [number, number, number];
  numClasses: number;
  seed?: number | undefined;
  [option: string]: unknown;
}

/** A short label of the model for logs and results ('resnet8', 'my-model.js#build'). */
export function modelLabel(cfg: ModelConfig): string {
  if (cfg.name !== undefined) return cfg.name;
  if (cfg.space !== undefined) {
    try {
      return spaceCandidate(cfg).key;
    } catch {
      return `${cfg.space} candidate`;
    }
  }
  const file = (cfg.module ?? '').split('/').at(-1);
  return `${file}#${cfg.export ?? 'default'}`;
}

/** Builds the configured model for `shape` and `numClasses`. */
export async function buildConfiguredModel(
  cfg: ModelConfig,
  opts: { inputShape: [number, number, number]; numClasses: number; seed?: number | undefined },
): Promise<tfl.LayersModel> {
  if (cfg.name !== undefined) {
    const o: BuildOptions = { ...cfg.options, inputShape: opts.inputShape, numClasses: opts.numClasses };
    return buildModel(cfg.name, opts.seed === undefined ? o : { ...o, seed: opts.seed });
  }
  if (cfg.space !== undefined) return spaceCandidate(cfg).build(opts);
  const path = cfg.module!;
  const name = cfg.export ?? 'default';
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (e) {
    throw new RetortError(`model.module ${path}: cannot import it (${(e as Error).message.split('\n')[0]})`, {
      file: path,
    });
  }
  const build = mod[name];
  if (typeof build !== 'function') {
    const have = Object.keys(mod).filter((k) => typeof mod[k] === 'function');
    throw new RetortError(
      `model.module ${path}: exports no function '${name}' (functions it exports: ${have.join(', ') || 'none'})`,
    );
  }
  const model = (await build({ ...cfg.options, ...opts })) as unknown;
  if (!(model instanceof tfl.LayersModel))
    throw new RetortError(
      `model.module ${path}: ${name}() returned ${model === null ? 'null' : typeof model}, not a tfjs-layers model (tf.model() or tf.sequential()); if it is one, the module imports another copy of @tensorflow/tfjs-layers than Retort`,
    );
  const out = model.outputs;
  const last = out[0]?.shape.at(-1);
  if (out.length !== 1 || last !== opts.numClasses)
    throw new RetortError(
      `model.module ${path}: ${name}() must return one output of logits [N, ${opts.numClasses}], got ${out.map((o) => `[${o.shape.map((d) => d ?? 'N').join(', ')}]`).join(', ')}`,
    );
  const inShape = model.inputs[0]?.shape.slice(1);
  if (inShape?.join(',') !== opts.inputShape.join(','))
    throw new RetortError(
      `model.module ${path}: ${name}() built an input of [${inShape?.join(', ')}], the data is [${opts.inputShape.join(', ')}] (use the inputShape it is given)`,
    );
  return model;
}
