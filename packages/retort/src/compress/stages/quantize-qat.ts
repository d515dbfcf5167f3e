/**
 * Weight quantization-aware training as a pipeline stage (quantize/qat.ts: fake-quantized kernels
 * with straight-through gradients, Jacob et al., "Quantization and Training of Neural Networks for
 * Efficient Integer-Arithmetic-Only Inference", CVPR 2018), optionally with fake-quantized
 * activations whose trained ranges the int8 export then uses (quantize/act-qat.ts). It reads the
 * `quantize` section of quantize-ptq.ts with `mode: qat`.
 */
import { weightQmax } from '../../export/onnx.js';
import { keepingMasks } from '../prune/magnitude.js';
import { type ActQatTask, withActQat } from '../quantize/act-qat.js';
import { type QatTask, withWeightQat } from '../quantize/qat.js';
import { int8Of, type QuantizeConfig, quantizeSchema } from './quantize-ptq.js';
import type { StageDescriptor } from './types.js';

export const quantizeQat: StageDescriptor<QuantizeConfig> = {
  name: 'quantize-qat',
  key: 'quantize',
  when: { mode: 'qat' },
  schema: quantizeSchema,
  label: 'qat',
  measured: false,
  // Calibration when no activation ranges were trained (activations off, or no fine-tuning epochs).
  needs: { finetune: true, calibration: true },
  refusesAfter: {
    cluster:
      'quantize.mode qat would re-quantize the shared weights off their codebooks; use ptq with cluster',
    'mixed-precision':
      "quantize.mode qat would retrain mixedPrecision's 8/6/4-bit kernels on one int8 grid; use ptq with mixedPrecision",
  },
  int8: int8Of,
  async run(ctx, q) {
    const { model, masks } = ctx;
    let qat: QatTask | null = null;
    let act: ActQatTask | null = null;
    await ctx.finetune(model, (t) => {
      // The weights train on the grid of the target they are exported for.
      qat = withWeightQat(keepingMasks(t, masks), model, weightQmax(q.target));
      if (q.activations) act = withActQat(qat, model);
      return act ?? qat;
    });
    (qat as QatTask | null)?.finish();
    // The ranges trained with the weights (none when there was no fine-tuning: calibrated then).
    const trained = (act as ActQatTask | null)?.finish();
    if (trained) ctx.log(`qat: int8 activation ranges from training (${trained.ranges.size} points)`);
    masks?.apply();
    return { ranges: trained ?? (await ctx.calibrate(model, q.calibBatches)) };
  },
};
