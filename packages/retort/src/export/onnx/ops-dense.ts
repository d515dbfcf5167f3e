/**
 * Dense layers of the ONNX export: Gemm on [N, in] with the kernel as stored ([in, out]), its
 * fused activation after it. The dynamic int8 export writes a MatMulInteger instead (dynamic.ts);
 * the static one quantizes weights (per output channel: axis 1) and bias when the input is.
 */
import type { OpTable } from './emit.js';
import { weightsOf } from './graph.js';
import { applyActivation } from './ops-activation.js';

export const DENSE_OPS: OpTable = {
  Dense: {
    emit: (ctx) => {
      const { g, layer, cfg, x, out, outShape } = ctx;
      const w = weightsOf(layer);
      if (x.shape.length !== 1)
        throw new Error(`onnx export: layer '${layer.name}': Dense on a rank-${x.shape.length + 1} input`);
      const k = w['kernel']!;
      const act = (cfg['activation'] as string | undefined) ?? 'linear';
      const gemmOut = act === 'linear' ? out : `${out}.gemm`;
      if (ctx.dynamic) {
        const mm = ctx.dynamic.dz.dense(out, x.name, k, w['bias']?.data, gemmOut);
        return applyActivation(ctx, out, { name: mm, layout: 'tf', shape: outShape });
      }
      const inputs = [x.name, ...ctx.weights(out, k.data, k.shape, 1, w['bias']?.data)];
      const gemm = g.node('Gemm', inputs, gemmOut);
      return applyActivation(ctx, out, { name: gemm, layout: 'tf', shape: outShape });
    },
    // Logits: QGemm writes float directly; a Q -> DQ there would only round them.
    int8: (layer, facts) =>
      ((layer.getConfig()['activation'] as string | undefined) ?? 'linear') === 'linear' &&
      facts.isOutput(layer)
        ? 'none'
        : 'own',
  },
};
