/**
 * What every `retort <command>` module exports, and each command's one-line summary. The summaries
 * live here, in a module that loads nothing, so that `retort --help` lists the commands without
 * loading any of them (they bring in tfjs and the addon, most of a second).
 */
export interface Command {
  name: CommandName;
  summary: string;
  run(argv: readonly string[]): Promise<void>;
}

export const SUMMARIES = {
  train: 'train a model (teacher or baseline student) from an experiment file',
  distill: 'distil a student from a trained teacher (experiment file with a teacher)',
  eval: "evaluate a run's model on the test split (loss, top-1, top-5)",
  export:
    "export a run's model to ONNX (fp32, fp16 weights, static int8 QDQ or dynamic int8), tfjs or an .rtz bundle, checked after writing",
  compress: 'prune, quantize and export a distilled student (pipeline file), measuring each stage',
  models: 'list the model zoo with parameter counts; `models <name>` shows its layers and taps',
  demo: 'Fashion-MNIST: teacher, student on labels, student with KD; one comparison table',
  serve:
    "a local page running the run's exported student in the browser (tfjs wasm and int8 ONNX in onnxruntime-web)",
  report: 'one self-contained HTML report (curves, confusion, trade-offs) of run folders, with SVG figures',
  sweep:
    'run a grid of experiments here (--local N) or through a BullMQ queue on Redis (--queue); status, report',
  worker: 'take sweep jobs from a BullMQ queue (retort sweep --queue) on this machine',
  search:
    'search a student under a latency/size budget: proxy-train candidates as sweep jobs, write the Pareto front and best.yaml',
} as const;

export type CommandName = keyof typeof SUMMARIES;
