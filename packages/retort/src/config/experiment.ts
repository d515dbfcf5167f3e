/**
 * The experiment file (YAML or JSON): what to train, on what, with which losses, how long. Every
 * object is strict, so a misspelt key fails and the error lists the valid ones. Method-specific loss
 * parameters are checked against that method's own schema (distill/losses/<method>.ts).
 */
import { z } from 'zod';

/** Datasets with no default folder: `dir` must name the user's copy. */
const NEEDS_DIR = new Set(['cifar10', 'cifar100', 'image-folder', 'csv']);

export const dataSchema = z
  .strictObject({
    /**
     * Reader: 'fashion-mnist' / 'mnist' (IDX files), 'cifar10' / 'cifar100' (binary batches),
     * 'image-folder' (<dir>/train|test/<class>/*.png|jpg) or 'csv' (<dir>/train.csv and test.csv).
     */
    dataset: z
      .enum(['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'image-folder', 'csv'])
      .default('fashion-mnist'),
    /**
     * Folder with the files: the extracted 'cifar-10-batches-bin' / 'cifar-100-binary', the image
     * root, the CSV folder (required for those); IDX datasets default to the Debian package's folder.
     */
    dir: z.string().optional(),
    /** image-folder: channels to decode to (1 grayscale, 3 RGB; default 3). */
    channels: z.union([z.literal(1), z.literal(3)]).optional(),
    /** csv: the name of the label column (default 'label'). */
    labelColumn: z.string().min(1).optional(),
    batchSize: z.number().int().positive().default(128),
    /** Fraction of the training set held out for validation (0 = evaluate on the test split). */
    valFraction: z.number().min(0).max(0.5).default(0),
    /** Random-crop zero padding in pixels (0 = off). */
    cropPadding: z.number().int().min(0).default(0),
    hflip: z.boolean().default(false),
    /** Use only the first N training / test images (quick runs and tests). */
    trainLimit: z.number().int().positive().optional(),
    testLimit: z.number().int().positive().optional(),
  })
  .superRefine((d, ctx) => {
    if (d.dir === undefined && NEEDS_DIR.has(d.dataset))
      ctx.addIssue({
        code: 'custom',
        path: ['dir'],
        message: `required for dataset '${d.dataset}' (there is no default location)`,
      });
    // Options of one reader given to another would be ignored silently; say so instead.
    if (d.channels !== undefined && d.dataset !== 'image-folder')
      ctx.addIssue({
        code: 'custom',
        path: ['channels'],
        message: `applies to dataset 'image-folder' only, not '${d.dataset}'`,
      });
    if (d.labelColumn !== undefined && d.dataset !== 'csv')
      ctx.addIssue({
        code: 'custom',
        path: ['labelColumn'],
        message: `applies to dataset 'csv' only, not '${d.dataset}'`,
      });
  });

/** A run name is a folder name under the runs root: never '.', '..' or a path. */
export const runNameSchema = z
  .string()
  .max(200)
  .regex(
    /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/,
    'letters, digits, ".", "_" and "-" only, not starting with "." (it names the run folder)',
  );

export const modelSchema = z.strictObject({
  /** A zoo name (see `retort models`). */
  name: z.string(),
  /** Builder options such as widthMult (passed to the zoo builder). */
  options: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).default({}),
});

export const teacherSchema = z.strictObject({
  model: modelSchema,
  /** A run folder of `retort train` whose model.ckpt holds the teacher weights. */
  run: z.string().optional(),
  /** Or a checkpoint file. */
  checkpoint: z.string().optional(),
});

export const optimizerSchema = z.strictObject({
  name: z.enum(['sgd', 'adam', 'adamw']).default('sgd'),
  lr: z.number().positive().default(0.05),
  momentum: z.number().min(0).max(1).default(0.9),
  nesterov: z.boolean().default(false),
  weightDecay: z.number().min(0).default(5e-4),
  beta1: z.number().min(0).max(1).default(0.9),
  beta2: z.number().min(0).max(1).default(0.999),
  eps: z.number().positive().default(1e-8),
});

export const scheduleSchema = z.strictObject({
  kind: z.enum(['constant', 'step', 'multistep', 'cosine']).default('cosine'),
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
});

export type Experiment = z.output<typeof experimentSchema>;
export type LossEntry = z.output<typeof lossEntrySchema>;
export type OptimizerConfig = z.output<typeof optimizerSchema>;
export type ScheduleConfig = z.output<typeof scheduleSchema>;
