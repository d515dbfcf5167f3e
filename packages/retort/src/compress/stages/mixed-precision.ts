/**
 * Mixed-precision weight quantization as a pipeline stage (compress/mixed-precision.ts: the
 * sensitivity scan and the budgeted choice, after Dong et al., "HAWQ", ICCV 2019; then weight QAT,
 * Jacob et al., CVPR 2018, each kernel on the grid of its own bit width). Steps:
 *   1. scan: every kernel at every candidate width, alone, on `scanBatches` plain training batches;
 *   2. choose: the widths with the least total predicted KL within `budget` (the first and last
 *      kernels stay at the widest when `skipEdges`: they are small and the most sensitive, as in
 *      HAQ and HAWQ);
 *   3. train: the pipeline's fine-tuning (CE + KD from the uncompressed model) with each kernel
 *      fake-quantized to its grid (quantize/qat.ts withWeightQat with a grid per layer); with
 *      finetune.epochs 0 the kernels are only rounded to their grids (post-training);
 *   4. hand on the kernels on their grids, and log the per-layer table and the packed size.
 * The int8 exports use this stage's target with per-channel scales, on which every grid of
 * `grid: 'export'` is exact (see compress/mixed-precision.ts). Not combined with `quantize` mode qat,
 * which would retrain every kernel on the one int8 grid (quantize-qat refuses to follow it); mode ptq
 * only calibrates the activations and keeps these weights. DepthwiseConv2D kernels train with one
 * scale per depth-multiplier column (the kernel's last axis, as quantize qat does) while the int8
 * export scales each output channel, so their int8 values are re-rounded (not exact) there.
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { weightQmax } from '../../export/onnx.js';
import {
  type BitsChoiceInput,
  chooseBits,
  gridQmax,
  packedBytes,
  type QuantLayer,
  sensitivityScan,
} from '../mixed-precision.js';
import { keepingMasks, prunableKernels } from '../prune/magnitude.js';
import { fakeQuantKernel, type QatTask, withWeightQat } from '../quantize/qat.js';
import type { StageDescriptor } from './types.js';

export const mixedPrecisionSchema = z
  .strictObject({
    /** Candidate bit widths per kernel (8: the int8 target's own grid). */
    bits: z
      .array(z.number().int().min(2).max(8))
      .min(1)
      .default([8, 6, 4])
      .refine((b) => new Set(b).size === b.length, { message: 'bit widths must be distinct' }),
    /**
     * Kernel bits at most this: a fraction of the same kernels all at 8 bits, or bytes of the
     * kernels packed at their widths (biases and batch norm not counted).
     */
    budget: z
      .union([
        z.strictObject({ fractionOf8bit: z.number().gt(0).max(1) }),
        z.strictObject({ bytes: z.number().int().positive() }),
      ])
      .default({ fractionOf8bit: 0.75 }),
    /** Plain training batches the sensitivity scan runs on. */
    scanBatches: z.number().int().positive().default(2),
    /** Keep the first and the last quantizable kernel at the widest of `bits`. */
    skipEdges: z.boolean().default(true),
    /** The int8 export target (export/onnx/target.ts); it fixes the 8-bit grid (qmax 63 or 127). */
    target: z.enum(['portable', 'vnni', 'arm64']).default('portable'),
    /**
     * export: b-bit grids that are sub-grids of the int8 export's, so the int8 files hold exactly
     * the trained weights; full: 2^(b-1) - 1 levels each side, re-rounded by the int8 export.
     */
    grid: z.enum(['export', 'full']).default('export'),
  })
  .superRefine((c, ctx) => {
    const q = weightQmax(c.target);
    if (c.grid !== 'export') return;
    // A sub-grid that keeps fewer than half the levels of b bits is no b-bit grid (8: the target's own).
    for (const b of c.bits)
      if (b < 8 && gridQmax(b, q, 'export') < 2 ** (b - 2))
        ctx.addIssue({
          code: 'custom',
          path: ['bits'],
          message: `target ${c.target}'s int8 grid [-${q}, ${q}] has no ${b}-bit sub-grid (the largest divisor of ${q} that fits is ${gridQmax(b, q, 'export')}); use target portable ([-63, 63]: 4-bit [-7, 7] and 6-bit [-21, 21] are exact) or grid full (the int8 export then re-rounds those weights by up to half its step)`,
        });
  });
export type MixedPrecisionConfig = z.output<typeof mixedPrecisionSchema>;

export const mixedPrecision: StageDescriptor<MixedPrecisionConfig> = {
  name: 'mixed-precision',
  key: 'mixedPrecision',
  schema: mixedPrecisionSchema,
  label: 'mixed-precision',
  measured: true,
  needs: { finetune: true, batches: true },
  refusesAfter: {
    cluster:
      'mixedPrecision would re-quantize the shared weights off their codebooks; use quantize (ptq) with cluster',
  },
  int8: (c) => ({ target: c.target, weights: 'per-channel' }),
  async run(ctx, c) {
    const { model, masks, log } = ctx;
    const exportQmax = weightQmax(c.target);
    const qmaxOf = (b: number) => gridQmax(b, exportQmax, c.grid);
    const widest = Math.max(...c.bits);
    const layers: QuantLayer[] = prunableKernels(model).map((k) => ({
      layer: k.layer,
      weights: k.kernel.size,
    }));
    const fixed = new Set(c.skipEdges && layers.length > 2 ? [layers[0]!.layer, layers.at(-1)!.layer] : []);
    const scanned = layers.filter((l) => !fixed.has(l.layer)).map((l) => l.layer);
    if (ctx.batches === undefined) throw new Error('mixed-precision: the runner serves no ctx.batches');
    const batches: tf.Tensor[] = await ctx.batches(c.scanBatches);
    const scan = (() => {
      try {
        return sensitivityScan(model, scanned, c.bits, qmaxOf, batches);
      } finally {
        for (const b of batches) b.dispose();
      }
    })();
    const all8 = layers.reduce((a, l) => a + 8 * l.weights, 0);
    const budgetBits = 'bytes' in c.budget ? 8 * c.budget.bytes : Math.floor(c.budget.fractionOf8bit * all8);
    const inputs: BitsChoiceInput[] = layers.map((l) => ({
      ...l,
      drop: fixed.has(l.layer) ? new Map([[widest, 0]]) : scan.drop.get(l.layer)!,
    }));
    const bits = chooseBits(inputs, budgetBits);
    const qmax = new Map([...bits].map(([l, b]) => [l, qmaxOf(b)]));
    const packed = packedBytes(layers, bits);
    const bytes8 = all8 / 8;
    log(`mixed-precision: per-layer sensitivity (KL to the float model, nats/image; top-1 kept %) and bits`);
    log(`| layer | weights | ${c.bits.map((b) => `${b}-bit (q ${qmaxOf(b)})`).join(' | ')} | bits |`);
    log(`|---|---:|${c.bits.map(() => '---:|').join('')}---:|`);
    for (const l of layers) {
      const cells = c.bits.map((b) => {
        const d = scan.drop.get(l.layer)?.get(b);
        return d === undefined
          ? 'kept'
          : `${d.toExponential(2)} (${scan.agreement.get(l.layer)!.get(b)!.toFixed(1)})`;
      });
      log(`| ${l.layer} | ${l.weights} | ${cells.join(' | ')} | ${bits.get(l.layer)} |`);
    }
    log(
      `mixed-precision: kernels packed ${packed} B at the chosen bits vs ${bytes8} B all 8-bit (${((100 * packed) / bytes8).toFixed(1)}%), budget ${Math.floor(budgetBits / 8)} B; predicted KL ${inputs.reduce((a, l) => a + l.drop.get(bits.get(l.layer)!)!, 0).toExponential(2)}`,
    );
    let qat: QatTask | null = null;
    await ctx.finetune(model, (t) => {
      qat = withWeightQat(keepingMasks(t, masks), model, qmax);
      return qat;
    });
    (qat as QatTask | null)?.finish();
    // The float masters onto their grids: the model handed on (and measured) is the quantized one.
    for (const { layer, kernel } of prunableKernels(model, [...qmax.keys()]))
      tf.tidy(() => kernel.assign(fakeQuantKernel(kernel, qmax.get(layer)!)));
    masks?.apply();
    return {
      weightBits: {
        layers: Object.fromEntries(bits),
        packedBytes: packed,
        int8Bytes: bytes8,
      },
    };
  },
};
