/**
 * The experiment file (YAML or JSON): what to train, on what, with which losses, how long. Every
 * object is strict, so a misspelt key fails and the error lists the valid ones. Method-specific loss
 * parameters are checked against that method's own schema (distill/losses/<method>.ts).
 */
import { z } from 'zod';

/**
 * A second modality stored as its own files, one item per sample, aligned index by index with the
 * data section's (data/views.ts pairs and checks them). It takes the reader options of the data
 * section that make sense for a second source; `dataset: code` takes splits a program passes in
 * (`data.views.<side>` of train()'s data option) and needs `data.dataset: code` too.
 */
const storedViewSchema = z.strictObject({
  kind: z.literal('stored'),
  dataset: z.enum(['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'image-folder', 'csv', 'code']),
  /** The folder of this modality's files (as data.dir). */
  dir: z.string().optional(),
  /** image-folder: channels to decode to (1 grayscale, 3 RGB; default 3). */
  channels: z.union([z.literal(1), z.literal(3)]).optional(),
  /** image-folder: resize every image to [H, W] (bilinear). */
  resize: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
  /** csv: the name of the label column (default 'label'). */
  labelColumn: z.string().min(1).optional(),
  /** Fixed per-channel mean/std of [0, 1] pixels; by default this source's training-split statistics. */
  normalize: z
    .strictObject({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
    .optional(),
});

/** A view of a sample for cross-modal distillation (data/views.ts applies it). */
export const viewSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('identity') }),
  z.strictObject({ kind: z.literal('sobel') }),
  z.strictObject({ kind: z.literal('downsample'), factor: z.number().int().min(2) }),
  storedViewSchema,
]);
export type View = z.output<typeof viewSchema>;
/** A view read from its own files (`kind: stored`). */
export type StoredView = Extract<View, { kind: 'stored' }>;

export const viewsSchema = z.strictObject({
  student: viewSchema.optional(),
  teacher: viewSchema.optional(),
});
export type Views = z.output<typeof viewsSchema>;

/** Datasets with no default folder: `dir` must name the user's copy. */
const NEEDS_DIR = new Set(['cifar10', 'cifar100', 'image-folder', 'csv']);

export const dataSchema = z
  .strictObject({
    /**
     * Reader: 'fashion-mnist' / 'mnist' (IDX files), 'cifar10' / 'cifar100' (binary batches),
     * 'image-folder' (<dir>/train|test/<class>/*.png|jpg), 'csv' (<dir>/train.csv and test.csv), or
     * 'code': splits a program passes to train()/distill() (arrayDataset).
     */
    dataset: z
      .enum(['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'image-folder', 'csv', 'code'])
      .default('fashion-mnist'),
    /**
     * Folder with the files: the extracted 'cifar-10-batches-bin' / 'cifar-100-binary', the image
     * root, the CSV folder (required for those); IDX datasets default to the Debian package's folder.
     */
    dir: z.string().optional(),
    /** image-folder: channels to decode to (1 grayscale, 3 RGB; default 3). */
    channels: z.union([z.literal(1), z.literal(3)]).optional(),
    /** image-folder: resize every image to [H, W] (bilinear), for folders of mixed sizes. */
    resize: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
    /**
     * image-folder: decode images when a batch needs them instead of all up front (folders larger
     * than memory; every epoch decodes again, so small folders train faster without it).
     */
    stream: z.boolean().optional(),
    /** csv: the name of the label column (default 'label'). */
    labelColumn: z.string().min(1).optional(),
    batchSize: z.number().int().positive().default(128),
    /** Fraction of the training set held out for validation (0 = evaluate on the test split). */
    valFraction: z.number().min(0).max(0.5).default(0),
    /** Random-crop zero padding in pixels (0 = off). */
    cropPadding: z.number().int().min(0).default(0),
    hflip: z.boolean().default(false),
    /**
     * Fixed per-channel normalisation of [0, 1] pixels, x = (p - mean[c]) / std[c] (one value for
     * every channel), e.g. ImageNet's constants as the PyTorch tutorial uses; by default the
     * training split's own per-channel statistics.
     */
    normalize: z
      .strictObject({
        mean: z.array(z.number()).min(1),
        std: z.array(z.number().positive()).min(1),
      })
      .optional(),
    /**
     * Cross-modal: what each network sees of a sample, `{ student: { kind: sobel }, teacher: ... }`
     * (identity where absent; kinds identity, sobel, downsample { factor }, and stored { dataset,
     * dir, ... }: a second modality read from its own files).
     */
    views: viewsSchema.optional(),
    /** Use only the first N training / test images (quick runs and tests). */
    trainLimit: z.number().int().positive().optional(),
    testLimit: z.number().int().positive().optional(),
  })
  .superRefine((d, ctx) => {
    readerIssues(d, [], ctx);
    for (const side of ['student', 'teacher'] as const) {
      const v = d.views?.[side];
      if (v?.kind !== 'stored') continue;
      const at = ['views', side];
      readerIssues(v, at, ctx);
      if (v.dataset === 'code' && d.dataset !== 'code')
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'dataset'],
          message: `'code' (views from a program) needs data.dataset 'code' too, not '${d.dataset}'`,
        });
      if (v.dataset === 'code' && v.dir !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'dir'],
          message: "a view from code ('code') has no folder",
        });
    }
  });

/**
 * Options of one reader given to another would be ignored silently; say so instead (the data
 * section's and a stored view's, at `path`).
 */
function readerIssues(
  d: {
    dataset: string;
    dir?: string | undefined;
    channels?: number | undefined;
    resize?: unknown;
    stream?: boolean | undefined;
    labelColumn?: string | undefined;
  },
  path: string[],
  ctx: z.RefinementCtx,
): void {
  if (d.dir === undefined && NEEDS_DIR.has(d.dataset))
    ctx.addIssue({
      code: 'custom',
      path: [...path, 'dir'],
      message: `required for dataset '${d.dataset}' (there is no default location)`,
    });
  const only = (key: 'channels' | 'resize' | 'stream' | 'labelColumn', reader: string, more = '') => {
    if (d[key] !== undefined && d.dataset !== reader)
      ctx.addIssue({
        code: 'custom',
        path: [...path, key],
        message: `applies to dataset '${reader}' only, not '${d.dataset}'${more}`,
      });
  };
  only('channels', 'image-folder');
  only('resize', 'image-folder');
  only('stream', 'image-folder', ' (a program streams its own batches with batchStream)');
  only('labelColumn', 'csv');
}

/** A run name is a folder name under the runs root: never '.', '..' or a path. */
export const runNameSchema = z
  .string()
  .max(200)
  .regex(
    /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/,
    'letters, digits, ".", "_" and "-" only, not starting with "." (it names the run folder)',
  );

export const modelSchema = z
  .strictObject({
    /** A zoo name (see `retort models`). */
    name: z.string().optional(),
    /** Or a JavaScript module of your own whose export builds a tfjs-layers model. */
    module: z.string().optional(),
    /** The module's builder: an exported function (default: the default export). */
    export: z.string().optional(),
    /** Builder options such as widthMult (passed to the zoo builder or the module's function). */
    options: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
    /**
     * Or a point of a student search space (`retort search`; spaces resnet, mobilenetv2, plain-cnn):
     * the space's name, with its genes in `candidate`.
     */
    space: z.string().min(1).optional(),
    /**
     * The genes, e.g. `{ blocks: [1, 2, 1], widthMult: 0.75 }`, as search/best.yaml writes them;
     * checked against the space's own candidate schema when the run starts (search/ sits above
     * config/ in the layers).
     */
    candidate: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((m, ctx) => {
    const given = (['name', 'module', 'space'] as const).filter((k) => m[k] !== undefined);
    if (given.length !== 1)
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `give exactly one of name (a zoo model), module (your own) or space (a search space's candidate); got ${given.length === 0 ? 'none' : given.join(' and ')}`,
      });
    if (m.export !== undefined && m.module === undefined)
      ctx.addIssue({ code: 'custom', path: ['export'], message: 'applies to model.module only' });
    if (m.space !== undefined && m.candidate === undefined)
      ctx.addIssue({ code: 'custom', path: ['candidate'], message: 'required with model.space (the genes)' });
    if (m.candidate !== undefined && m.space === undefined)
      ctx.addIssue({ code: 'custom', path: ['candidate'], message: 'applies to model.space only' });
    if (m.space !== undefined && Object.keys(m.options).length > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['options'],
        message: "a search space's candidate takes no options (its genes are in model.candidate)",
      });
  });

/**
 * A model file from another framework or an earlier tfjs program, and how it takes its images:
 * the fields an external teacher and a model to compress (`retort compress` with `model:`) share.
 */
const modelFileFields = {
  /** An ONNX file. */
  onnx: z.string().optional(),
  /** A tfjs model: the path of its model.json (a layers model; a teacher may also be a graph model). */
  tfjs: z.string().optional(),
  /** ONNX: layout of the image input, 'nchw' (PyTorch) or 'nhwc'. */
  layout: z.enum(['nchw', 'nhwc']).optional(),
  /** The model's own normalization: per-channel mean and std of [0, 1] pixels (one value = all). */
  mean: z.array(z.number()).min(1).optional(),
  std: z.array(z.number().positive()).min(1).optional(),
};

/** Checks shared by teacher and model-file sections: which keys go with onnx and tfjs. */
function checkModelFile(
  t: { onnx?: string | undefined; layout?: string | undefined },
  ctx: z.RefinementCtx,
  who: string,
): void {
  if (t.onnx !== undefined && t.layout === undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['layout'],
      message: `required for an onnx ${who}: 'nchw' (PyTorch) or 'nhwc'`,
    });
  if (t.onnx === undefined && t.layout !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['layout'],
      message: `applies to onnx ${who}s only (tfjs models are NHWC)`,
    });
}

/**
 * The model `retort compress` starts from when it is not a Retort run: an ONNX CNN (imported into
 * a trainable tfjs model) or a tfjs layers model. Its mean and std become the data's normalization,
 * so that the compressed model takes exactly the inputs the original took.
 */
export const modelFileSchema = z
  .strictObject({
    ...modelFileFields,
    /**
     * Put a BatchNorm back after every conv that has none (compress/restore-bn.ts): exports that
     * folded them (torch.onnx.export in eval mode) fine-tune unstably without. Starts as the
     * identity, so the model's outputs do not change; false imports the graph as it is.
     */
    restoreBatchNorm: z.boolean().default(true),
  })
  .superRefine((m, ctx) => {
    if ((m.onnx === undefined) === (m.tfjs === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `give exactly one of onnx or tfjs; got ${m.onnx === undefined ? 'none' : 'both'}`,
      });
    checkModelFile(m, ctx, 'model');
    if ((m.mean === undefined) !== (m.std === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [m.mean === undefined ? 'mean' : 'std'],
        message: 'give both mean and std, or neither',
      });
  });
export type ModelFileConfig = z.output<typeof modelFileSchema>;

const EXTERNAL_ONLY = ['layout', 'inputSize', 'channels', 'mean', 'std', 'taps'] as const;

/**
 * The teacher: a zoo model with its weights (`model` + `run` or `checkpoint`), an ONNX file
 * (`onnx`, run in onnxruntime; e.g. exported from PyTorch) or a tfjs layers model (`tfjs`: its
 * model.json). External teachers say how they preprocess images when it differs from the data's.
 */
export const teacherSchema = z
  .strictObject({
    /** A zoo model (see `retort models`). */
    model: modelSchema.optional(),
    /** A run of `retort train` (its name under the runs root, or a folder) whose model.ckpt holds the weights. */
    run: z.string().optional(),
    /** Or a checkpoint file. */
    checkpoint: z.string().optional(),
    /** Or a PyTorch state dict (torch.save(model.state_dict()), .pt/.pth) with RepDistiller's names. */
    stateDict: z.string().optional(),
    ...modelFileFields,
    /** [H, W] the teacher takes, when its file leaves it open; images are resized to it. */
    inputSize: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional(),
    /** Channels the teacher takes, when its file leaves it open (3 from gray data repeats it). */
    channels: z.number().int().positive().optional(),
    /**
     * Short names for the teacher's tensors (ONNX tensor, tfjs graph node or layer names), usable in
     * a loss's taps.teacher: {stage3: '/layer3/...'}.
     */
    taps: z.record(z.string(), z.string().min(1)).optional(),
  })
  .superRefine((t, ctx) => {
    const sources = (['model', 'onnx', 'tfjs'] as const).filter((k) => t[k] !== undefined);
    if (sources.length !== 1)
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `give exactly one of model (a zoo teacher with run or checkpoint), onnx or tfjs; got ${sources.length === 0 ? 'none' : sources.join(' and ')}`,
      });
    if (t.model === undefined)
      for (const k of ['run', 'checkpoint', 'stateDict'] as const)
        if (t[k] !== undefined)
          ctx.addIssue({ code: 'custom', path: [k], message: 'applies to a zoo teacher (with model) only' });
    if (t.model !== undefined)
      for (const k of EXTERNAL_ONLY)
        if (t[k] !== undefined && (t.stateDict === undefined || k === 'layout' || k === 'taps'))
          ctx.addIssue({
            code: 'custom',
            path: [k],
            message:
              'applies to onnx and tfjs teachers (and mean/std/inputSize/channels to stateDict ones) only',
          });
    checkModelFile(t, ctx, 'teacher');
    if (t.onnx === undefined && t.tfjs === undefined && t.taps !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['taps'],
        message:
          'aliases for tensor names apply to onnx and tfjs teachers only (zoo teachers are tapped by layer name)',
      });
  });

export type TeacherConfig = z.output<typeof teacherSchema>;

/**
 * The optimizer. Unset fields take torch.optim's defaults for the chosen optimizer, so a recipe
 * copied from PyTorch means the same here: momentum 0, no nesterov, weight decay 0 (AdamW 0.01),
 * Adam's betas 0.9 / 0.999 and eps 1e-8, lr 0.001 for Adam and AdamW. PyTorch has no default rate
 * for SGD; Retort's is 0.05. (RepDistiller's recipe — momentum 0.9, nesterov, weight decay 5e-4 —
 * is spelt out in the shipped configs.)
 */
export const optimizerSchema = z
  .strictObject({
    name: z.enum(['sgd', 'adam', 'adamw']).default('sgd'),
    lr: z.number().positive().optional(),
    momentum: z.number().min(0).max(1).optional(),
    nesterov: z.boolean().optional(),
    weightDecay: z.number().min(0).optional(),
    beta1: z.number().min(0).max(1).optional(),
    beta2: z.number().min(0).max(1).optional(),
    eps: z.number().positive().optional(),
  })
  .transform((o) => ({
    name: o.name,
    lr: o.lr ?? (o.name === 'sgd' ? 0.05 : 1e-3),
    momentum: o.momentum ?? 0,
    nesterov: o.nesterov ?? false,
    weightDecay: o.weightDecay ?? (o.name === 'adamw' ? 0.01 : 0),
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    eps: o.eps ?? 1e-8,
  }));

/** The learning-rate schedule; constant by default, as PyTorch without a scheduler. */
export const scheduleSchema = z.strictObject({
  kind: z.enum(['constant', 'step', 'multistep', 'cosine']).default('constant'),
  /** multistep: epochs at which the rate is multiplied by gamma. */
  milestones: z.array(z.number().int().nonnegative()).default([]),
  stepSize: z.number().int().positive().default(30),
  gamma: z.number().positive().default(0.1),
  minLr: z.number().min(0).default(0),
  warmupEpochs: z.number().min(0).default(0),
  warmupFrom: z.number().min(0).max(1).default(0),
});

/**
 * One loss term: `name` picks the method, `weight` is its coefficient (RepDistiller's -r/-a/-b for
 * ce/kd/other); the remaining keys are the method's own parameters, checked by its schema.
 */
export const lossEntrySchema = z.looseObject({
  name: z.string(),
  weight: z.number().min(0).default(1),
});

export const stageSchema = z.strictObject({
  name: z.string(),
  epochs: z.number().int().positive(),
  losses: z.array(lossEntrySchema).min(1),
  optimizer: optimizerSchema.optional(),
  schedule: scheduleSchema.optional(),
});

export const experimentSchema = z.strictObject({
  name: runNameSchema,
  seed: z.number().int().nonnegative().default(1),
  data: dataSchema.default(dataSchema.parse({})),
  model: modelSchema,
  teacher: teacherSchema.optional(),
  losses: z
    .array(lossEntrySchema)
    .min(1)
    .default([{ name: 'ce', weight: 1 }]),
  optimizer: optimizerSchema.default(optimizerSchema.parse({})),
  schedule: scheduleSchema.default(scheduleSchema.parse({})),
  epochs: z.number().int().positive().default(10),
  /** Consecutive stages (e.g. a hint stage, then KD); when given, they replace losses/epochs. */
  stages: z.array(stageSchema).optional(),
  /** Cache teacher outputs on disk when the inputs allow it (no augmentation). */
  cacheTeacher: z.boolean().default(true),
  /**
   * Who is trained, who is frozen: `{ name: dml, ... }` (distill/schemes/); the remaining keys are
   * the scheme's own options, checked by its schema. Offline (a frozen teacher) when absent.
   */
  scheme: z.looseObject({ name: z.string() }).optional(),
  /**
   * A student search (`retort search`): space, strategy, constraints, latency setting, proxy
   * training. Checked by search/search-config.ts when the search runs (search/ sits above config/
   * in the layers); training the experiment itself (`retort train` / `distill`) ignores it.
   */
  search: z.record(z.string(), z.unknown()).optional(),
});

export type Experiment = z.output<typeof experimentSchema>;
export type LossEntry = z.output<typeof lossEntrySchema>;
export type OptimizerConfig = z.output<typeof optimizerSchema>;
export type ScheduleConfig = z.output<typeof scheduleSchema>;
