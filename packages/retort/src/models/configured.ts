/**
 * The model a config's `model` section names: a zoo entry (`name`), or a builder exported by the
 * user's own module (`module: ./my-model.js`, `export: build`), called with the input shape, class
 * count, seed and the section's options, returning a tfjs-layers model (or a promise of one). Its
 * layers are tapped by name like a zoo model's, so feature methods need no change to user code.
 */
import { pathToFileURL } from 'node:url';
import * as tfl from '@tensorflow/tfjs-layers';
import { RetortError } from '../util/errors.js';
import { type BuildOptions, buildModel } from './index.js';

export interface ModelConfig {
  name?: string | undefined;
  module?: string | undefined;
  export?: string | undefined;
  options: Record<string, number | string | boolean>;
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
