/**
 * The model zoo: name -> builder, with the names RepDistiller (Tian et al., "Contrastive
 * Representation Distillation", ICLR 2020) uses in its model_dict, so its experiment tables map
 * one to one. Every builder returns a functional tfjs-layers model over NHWC images, [N, H, W, C]
 * -> logits [N, numClasses], for any input size and class count; parameter counts at 32x32x3 and
 * 100 classes equal RepDistiller's PyTorch definitions (test/models/zoo.test.ts pins them).
 *
 * Options from experiment files arrive as a flat record: the common ones (inputShape, numClasses,
 * seed, name) plus per-model ones (`options` of the entry, e.g. widthMult); any other key fails.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import { createRegistry, type Registry } from '../util/registry.js';
import type { ModelTaps, ZooOptions } from './common.js';
import { mlp } from './mlp.js';
import { type MobileNetV2Options, mobileNetV2, mobileNetV2Taps } from './mobilenetv2.js';
import { plainCnn, plainCnnTaps } from './plain-cnn.js';
import { resnet, resnet8x4, resnet32x4, resnetTaps } from './resnet.js';
import { shuffleNetV2, shuffleNetV2Sizes, shuffleNetV2Taps } from './shufflenetv2.js';
import { deepNN, lightNN } from './tutorial.js';
import { vgg, vggTaps } from './vgg.js';
import { wrn, wrnTaps } from './wrn.js';

export type { ModelTaps, StageTap, ZooOptions } from './common.js';
export { mobileNetV2, mobileNetV2Taps } from './mobilenetv2.js';
export { plainCnn, plainCnnTaps } from './plain-cnn.js';
export { resnet, resnet8x4, resnet32x4, resnetTaps } from './resnet.js';
export { shuffleNetV2, shuffleNetV2Sizes, shuffleNetV2Taps } from './shufflenetv2.js';
export { vgg, vggTaps } from './vgg.js';
export { wrn, wrnTaps } from './wrn.js';

/** Builder options as experiment files give them: the common ones and model-specific extras. */
export type BuildOptions = ZooOptions & { readonly [option: string]: unknown };

/** One zoo entry. */
export interface ZooEntry {
  /** One line for listings: family, configuration, paper. */
  description: string;
  /** Option keys the entry takes besides inputShape, numClasses, seed, name. */
  options: readonly string[];
  /** Builds a fresh model (options already checked against `options`). */
  build(opts: BuildOptions): tfl.LayersModel;
  /** Where its features are, by layer name (see ModelTaps). */
  taps(opts: BuildOptions): ModelTaps;
}

const COMMON_OPTIONS = ['inputShape', 'numClasses', 'seed', 'name'] as const;

function numberOption(opts: BuildOptions, key: string, model: string): number | undefined {
  const v = opts[key];
  if (v !== undefined && typeof v !== 'number')
    throw new Error(`model '${model}': option ${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * A number, a list of numbers or a comma-separated string ("2,3,4,3,3,1", as `--set` gives it) as a
 * number or a list; undefined when absent.
 */
function numbersOption(opts: BuildOptions, key: string, model: string): number | number[] | undefined {
  const v = opts[key];
  if (v === undefined || typeof v === 'number') return v;
  const list = Array.isArray(v)
    ? v
    : typeof v === 'string'
      ? v.split(',').map((x) => Number(x.trim()))
      : null;
  if (list === null || list.length === 0 || !list.every((x) => typeof x === 'number' && Number.isFinite(x)))
    throw new Error(
      `model '${model}': option ${key} must be a number or a list of numbers, got ${JSON.stringify(v)}`,
    );
  return list as number[];
}

/** The common options, without the model-specific extras. */
function common(opts: BuildOptions): ZooOptions {
  const out: ZooOptions = {};
  if (opts.inputShape !== undefined) out.inputShape = opts.inputShape;
  if (opts.numClasses !== undefined) out.numClasses = opts.numClasses;
  if (opts.seed !== undefined) out.seed = opts.seed;
  if (opts.name !== undefined) out.name = opts.name;
  return out;
}

function resnetEntry(depth: number): ZooEntry {
  return {
    description: `ResNet-${depth} for CIFAR, widths 16-16-32-64 (He et al., CVPR 2016)`,
    options: [],
    build: (o) => resnet(depth, common(o)),
    taps: () => resnetTaps(depth),
  };
}

const wrnEntry = (depth: number, widen: number): ZooEntry => ({
  description: `WRN-${depth}-${widen} (Zagoruyko & Komodakis, BMVC 2016)`,
  options: [],
  build: (o) => wrn(depth, widen, common(o)),
  taps: () => wrnTaps(depth),
});

const vggEntry = (depth: number): ZooEntry => ({
  description: `VGG-${depth} with batch norm, CIFAR form (Simonyan & Zisserman, ICLR 2015)`,
  options: [],
  build: (o) => vgg(depth, common(o)),
  taps: () => vggTaps(depth),
});

const mobileNetV2Entry: ZooEntry = {
  description:
    'MobileNetV2, default width 0.5 and expansion 6 = RepDistiller mobile_half (Sandler et al., CVPR 2018)',
  options: ['widthMult', 'expansion', 'kernel', 'depths'],
  build: (o) => mobileNetV2({ ...common(o), ...mobileNetV2Extras(o) }),
  taps: (o) => mobileNetV2Taps(mobileNetV2Extras(o).depths),
};

/** mobilenetv2's own options; expansion, kernel and depths: one number, or one per stage 1-6. */
function mobileNetV2Extras(o: BuildOptions): MobileNetV2Options {
  const extra: MobileNetV2Options = {};
  const widthMult = numberOption(o, 'widthMult', 'mobilenetv2');
  const expansion = numbersOption(o, 'expansion', 'mobilenetv2');
  const kernel = numbersOption(o, 'kernel', 'mobilenetv2');
  const depths = numbersOption(o, 'depths', 'mobilenetv2');
  if (widthMult !== undefined) extra.widthMult = widthMult;
  if (expansion !== undefined) extra.expansion = expansion;
  if (kernel !== undefined) extra.kernel = kernel;
  if (depths !== undefined) extra.depths = depths;
  return extra;
}

const shuffleNetV2Entry: ZooEntry = {
  description: `ShuffleNetV2, netSize ${shuffleNetV2Sizes().join('/')} (default 1 = RepDistiller ShuffleV2; Ma et al., ECCV 2018)`,
  options: ['netSize'],
  build: (o) => {
    const netSize = numberOption(o, 'netSize', 'shufflenetv2');
    return shuffleNetV2({ ...common(o), ...(netSize === undefined ? {} : { netSize }) });
  },
  taps: (o) => shuffleNetV2Taps(numberOption(o, 'netSize', 'shufflenetv2') ?? 1),
};

/** Zoo entries by RepDistiller's names, lower case for the two it capitalises. */
export const ZOO_ENTRIES = {
  resnet8: resnetEntry(8),
  resnet14: resnetEntry(14),
  resnet20: resnetEntry(20),
  resnet32: resnetEntry(32),
  resnet44: resnetEntry(44),
  resnet56: resnetEntry(56),
  resnet110: resnetEntry(110),
  resnet8x4: {
    description: 'ResNet-8 for CIFAR, widths 32-64-128-256 (RepDistiller resnet8x4; He et al., CVPR 2016)',
    options: [],
    build: (o) => resnet8x4(common(o)),
    taps: () => resnetTaps(8),
  },
  resnet32x4: {
    description: 'ResNet-32 for CIFAR, widths 32-64-128-256 (RepDistiller resnet32x4; He et al., CVPR 2016)',
    options: [],
    build: (o) => resnet32x4(common(o)),
    taps: () => resnetTaps(32),
  },
  wrn_16_1: wrnEntry(16, 1),
  wrn_16_2: wrnEntry(16, 2),
  wrn_40_1: wrnEntry(40, 1),
  wrn_40_2: wrnEntry(40, 2),
  vgg8: vggEntry(8),
  vgg11: vggEntry(11),
  vgg13: vggEntry(13),
  vgg16: vggEntry(16),
  vgg19: vggEntry(19),
  mobilenetv2: mobileNetV2Entry,
  shufflenetv2: shuffleNetV2Entry,
} satisfies Record<string, ZooEntry>;

/** RepDistiller's spellings of two entries. */
export const ZOO_ALIASES = {
  MobileNetV2: 'mobilenetv2',
  ShuffleV2: 'shufflenetv2',
} as const satisfies Record<string, keyof typeof ZOO_ENTRIES>;

export type ZooName = keyof typeof ZOO_ENTRIES | keyof typeof ZOO_ALIASES;

/** Every zoo name (entries and aliases); unknown names fail listing the known ones. */
export const zoo: Registry<ZooEntry> = createRegistry<ZooEntry>('model');
for (const [name, entry] of Object.entries(ZOO_ENTRIES)) zoo.add(name, entry);
for (const [alias, target] of Object.entries(ZOO_ALIASES)) zoo.add(alias, ZOO_ENTRIES[target]);

// The PyTorch KD tutorial's teacher and student (tutorial.ts). Their convs carry fused ReLUs, so the
// stage taps have no separate pre-activation tensors.
const tutorialTaps = (convs: readonly string[], pooled: string): ModelTaps => ({
  stages: [...convs.map((c) => ({ output: c, preact: c })), { output: pooled, preact: pooled }],
  bnBeforeRelu: [],
});
zoo.add('deepnn', {
  description: "DeepNN, the teacher of PyTorch's knowledge-distillation tutorial (4 convs, 2 dense)",
  options: [],
  build: (o) => deepNN(common(o)),
  taps: () => tutorialTaps(['features.conv2', 'features.conv4'], 'classifier.fc1'),
});
zoo.add('lightnn', {
  description: "LightNN, the student of PyTorch's knowledge-distillation tutorial (2 convs, 2 dense)",
  options: [],
  build: (o) => lightNN(common(o)),
  taps: () => tutorialTaps(['features.conv1', 'features.conv2'], 'classifier.fc1'),
});

zoo.add('mlp', {
  description:
    'MLP over flattened pixels, hidden widths from option hidden (number or "256,128"; default 64)',
  options: ['hidden'],
  build: (o) => {
    const h = o['hidden'];
    const hidden =
      h === undefined
        ? undefined
        : typeof h === 'number'
          ? [h]
          : String(h)
              .split(',')
              .map((v) => Number(v.trim()));
    if (hidden?.some((u) => !Number.isInteger(u) || u <= 0)) {
      throw new Error(`model 'mlp': option hidden must be positive integers, got ${JSON.stringify(h)}`);
    }
    return mlp({ ...common(o), ...(hidden ? { hidden } : {}) });
  },
  taps: () => ({ stages: [{ output: 'fc1', preact: 'fc1' }], bnBeforeRelu: [] }),
});

/** plaincnn's option stages: lists of channels per stage, or a string "16,16/32/64" (`--set`). */
function plainCnnStages(o: BuildOptions): number[][] | undefined {
  const v = o['stages'];
  if (v === undefined) return undefined;
  const lists =
    typeof v === 'string' ? v.split('/').map((st) => st.split(',').map((c) => Number(c.trim()))) : v;
  if (
    !Array.isArray(lists) ||
    !lists.every((st) => Array.isArray(st) && st.every((c) => typeof c === 'number'))
  )
    throw new Error(
      `model 'plaincnn': option stages must be lists of channels per stage, got ${JSON.stringify(v)}`,
    );
  return lists as number[][];
}

zoo.add('plaincnn', {
  description: 'Plain CNN: stages of conv3x3-BN-ReLU, 2x2 max pools between, GAP, Linear (option stages)',
  options: ['stages'],
  build: (o) => {
    const stages = plainCnnStages(o);
    return plainCnn({ ...common(o), ...(stages ? { stages } : {}) });
  },
  taps: (o) => plainCnnTaps(plainCnnStages(o)),
});

function checkOptions(name: string, entry: ZooEntry, opts: BuildOptions): void {
  const known = [...COMMON_OPTIONS, ...entry.options];
  for (const key of Object.keys(opts)) {
    if (opts[key] !== undefined && !known.includes(key))
      throw new Error(`model '${name}': unknown option '${key}' (known: ${known.join(', ')})`);
  }
}

/**
 * Builds zoo model `name`: input [N, H, W, C] (inputShape, default [32, 32, 3]) -> logits
 * [N, numClasses] (default 100). Throws listing the known names for an unknown one, and the
 * accepted options for an unknown option.
 */
export function buildModel(name: string, opts: BuildOptions = {}): tfl.LayersModel {
  const entry = zoo.get(name);
  checkOptions(name, entry, opts);
  return entry.build(opts);
}

/** Feature taps (layer names) of zoo model `name` built with `opts`. */
export function modelTaps(name: string, opts: BuildOptions = {}): ModelTaps {
  const entry = zoo.get(name);
  checkOptions(name, entry, opts);
  return entry.taps(opts);
}
