/**
 * Post-training int8 quantization as a pipeline stage: the activation ranges of the static int8
 * export are calibrated on training batches after every other stage (Jacob et al., "Quantization
 * and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018). The
 * weights are quantized by the exporters, per the settings this stage hands them (`int8`).
 * This file owns the `quantize` section of a pipeline, which weight QAT (quantize-qat.ts) shares:
 * both end with the same int8 exports.
 */
import { z } from 'zod';
import type { Int8Settings, StageDescriptor } from './types.js';

export const quantizeSchema = z
  .strictObject({
    mode: z.enum(['ptq', 'qat']).default('ptq'),
    calibBatches: z.number().int().positive().default(8),
    /** int8 weight scales of the ONNX export: one per output channel, or one per tensor. */
    weights: z.enum(['per-channel', 'per-tensor']).default('per-channel'),
    /**
     * Which CPUs the int8 exports are right on (export/onnx/target.ts): portable (default; 7-bit
     * weights, exact on every x86-64 and ARM64), vnni or arm64 (full 8-bit weights). Weight QAT
     * trains on the same grid.
     */
    target: z.enum(['portable', 'vnni', 'arm64']).default('portable'),
    /**
     * qat: fake-quantize the activations too (quantize/act-qat.ts); the int8 export then uses
     * the ranges observed in training instead of calibrating after it.
     */
    activations: z.boolean().default(false),
    /**
     * Quantize the ONNX file of `model` itself (export/onnx/ptq.ts: no import, no training), as
     * onnxruntime's quantizer does; needs mode ptq and no other stage, and exports onnx-int8.
     */
    direct: z.boolean().default(false),
  })
  .refine((q) => !q.activations || q.mode === 'qat', {
    message: 'quantize.activations needs mode qat (ptq calibrates the activations after training)',
    path: ['activations'],
  });
export type QuantizeConfig = z.output<typeof quantizeSchema>;

/** The int8 export settings of a `quantize` section, the same in both modes. */
export function int8Of(q: QuantizeConfig): Int8Settings {
  return { target: q.target, weights: q.weights };
}

export const quantizePtq: StageDescriptor<QuantizeConfig> = {
  name: 'quantize-ptq',
  key: 'quantize',
  when: { mode: 'ptq' },
  schema: quantizeSchema,
  label: 'ptq',
  measured: false,
  needs: { calibration: true },
  int8: int8Of,
  run: async (ctx, q) => ({ ranges: await ctx.calibrate(ctx.model, q.calibBatches) }),
};
