/**
 * A teacher is any model that maps the student's input batches to logits (and, for feature
 * methods, to named intermediate tensors): a tfjs-layers model in this process, an ONNX file run by
 * onnxruntime, a tfjs model folder. The distillation code sees only this interface.
 */
import type * as tf from '@tensorflow/tfjs-core';

/** A teacher with its taps bound: what a training step or a cache build runs. */
export interface TeacherView {
  /** Per-example shape of each tap, NHWC ([H, W, C] for maps, [D] for vectors). */
  shapes: number[][];
  /**
   * Logits [N, K] and tapped features (in tap order) for a batch `x` [N, H, W, C] preprocessed as
   * the student's data; inference mode (BN running statistics, no dropout). A teacher that can
   * answer synchronously (tfjs in this process) does; others return a promise.
   */
  run(
    x: tf.Tensor,
  ): { logits: tf.Tensor2D; features: tf.Tensor[] } | Promise<{ logits: tf.Tensor2D; features: tf.Tensor[] }>;
}

export interface Teacher {
  /** Where it comes from, for logs ("zoo resnet20 from runs/t", "onnx teacher.onnx"). */
  description: string;
  numClasses: number;
  /** Number of weights when known. */
  params: number | undefined;
  /** A digest of the weights and preprocessing: teacher caches are keyed by it. */
  identity(): string;
  /** Binds taps (layer names, or tensor names / aliases for ONNX) to a runnable view. */
  tap(taps: readonly string[]): TeacherView;
  /**
   * The tfjs model itself, when the teacher runs in this process on the student's inputs as they
   * are (no adapter): what methods that read its layers' state use (DeepInversion's BN statistics).
   */
  readonly model?: import('@tensorflow/tfjs-layers').LayersModel | undefined;
  dispose(): void;
}
