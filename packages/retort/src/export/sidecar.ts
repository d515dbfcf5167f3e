/**
 * The sidecar every export carries: what a program that loads the exported model must do to an image
 * before it (size, channels, pixel scale, per-channel mean and std, layout) and what the outputs
 * mean (class names in output order). Without it an exported model is a function of unknown input.
 * Written next to the export: `<file>.json` beside an .onnx file, `retort.json` inside a tfjs folder.
 */
import { writeFileAtomic } from '../util/atomic.js';

export interface ExportSidecar {
  format: string;
  /** The exported file or folder this describes (relative name). */
  model: string;
  input: {
    /** Tensor layout the model takes. */
    layout: 'nhwc';
    /** [H, W, C] of one image. */
    shape: [number, number, number];
    dtype: 'float32';
    /** How to compute each input value from an 8-bit pixel p of channel c. */
    formula: string;
    /** Per-channel mean and std of [0, 1] pixels. */
    mean: number[];
    std: number[];
  };
  output: { kind: 'logits'; numClasses: number; classes?: string[] | undefined };
  /** Anything else worth knowing (int8 target, ...). */
  notes?: Record<string, string | number> | undefined;
}

export interface SidecarData {
  shape: readonly [number, number, number] | readonly number[];
  mean: readonly number[];
  std: readonly number[];
  numClasses: number;
  classNames?: readonly string[] | undefined;
  /** How an input value comes from the data, when not from 8-bit pixels (streamed splits). */
  inputFormula?: string | undefined;
}

/** The sidecar of an export of a model trained on `data`. */
export function sidecarFor(
  format: string,
  model: string,
  data: SidecarData,
  notes?: Record<string, string | number>,
): ExportSidecar {
  const [h, w, c] = data.shape as [number, number, number];
  return {
    format,
    model,
    input: {
      layout: 'nhwc',
      shape: [h, w, c],
      dtype: 'float32',
      formula: data.inputFormula ?? 'x[n, y, x, c] = (p / 255 - mean[c]) / std[c]',
      mean: [...data.mean],
      std: [...data.std],
    },
    output: {
      kind: 'logits',
      numClasses: data.numClasses,
      ...(data.classNames ? { classes: [...data.classNames] } : {}),
    },
    ...(notes ? { notes } : {}),
  };
}

/** Writes `sidecar` to `path` atomically (pretty JSON). */
export function writeSidecar(path: string, sidecar: ExportSidecar): void {
  writeFileAtomic(path, `${JSON.stringify(sidecar, null, 2)}\n`);
}
