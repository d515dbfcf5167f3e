/**
 * Mixed-precision weight quantization: each Conv2D / DepthwiseConv2D / Dense kernel gets a bit width
 * of its own, chosen where the model is least sensitive under a size budget. As in HAWQ (Dong et
 * al., "HAWQ: Hessian AWare Quantization of Neural Networks with Mixed-Precision", ICCV 2019) and
 * HAQ (Wang et al., "HAQ: Hardware-Aware Automated Quantization with Mixed Precision", CVPR 2019),
 * a per-layer sensitivity decides and the choice is a budgeted optimisation; the sensitivity here
 * is not a Hessian trace but measured, as ZeroQ does (Cai et al., "ZeroQ: A Novel Zero Shot
 * Quantization Framework", CVPR 2020): the KL divergence of the model's softmax with only that
 * layer's kernel quantized to b bits from the float model's, on a few training batches. The total
 * of the chosen layers' divergences is the predicted loss (per-layer effects are taken as additive,
 * HAWQ's assumption too), minimised exactly by a multiple-choice knapsack over the kernels' bits.
 *
 * The grids. Quantization is symmetric per output channel (scale max|w| / qmax, as weight QAT and
 * the int8 exports), and the exports store int8: the int8 ONNX export re-derives each channel's
 * scale from max|w| at the target's qmax Q (63 portable, 127 vnni/arm64; export/onnx/target.ts).
 * A kernel on a grid of qmax q has max|w| = q s per channel, so the export's step is q s / Q and a
 * grid value n s becomes n Q / q: exact for every n if and only if q divides Q. So `grid: 'export'`
 * (default) gives a b-bit layer the largest q <= 2^(b-1) - 1 that divides Q: for the portable
 * target 8 -> 63 (the target's own grid: 127 levels), 6 -> 21 (43 levels), 5 -> 9, 4 -> 7 (the full
 * 4-bit [-7, 7]: stored as multiples of 9), 3 -> 3, 2 -> 1; the int8 file (and the .rtz bundle,
 * which requantizes the same way) then holds exactly the weights that were trained and measured.
 * 127 is prime, so vnni/arm64 have no such sub-grids; `grid: 'full'` uses q = 2^(b-1) - 1 for
 * b < 8 there, and the int8 export rounds those weights once more, by at most half its step
 * (q s / 2Q: 2.8% of a 4-bit step at Q = 127). Batch norm folded into a conv scales each output
 * channel, which keeps a channel on its grid; per-tensor int8 weights would not (one scale for
 * channels of different grids), so the exports use per-channel weights.
 *
 * Sizes count the kernels at their nominal bit widths (b bits per weight, as packed storage would
 * hold them; biases and batch-norm parameters stay float and are not counted). The files on disk
 * are int8 or float whatever the bits: the packed size is what a b-bit container format would take.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { prunableKernels } from './prune/magnitude.js';
import { fakeQuantKernel } from './quantize/qat.js';

/** How a b-bit grid relates to the int8 export's (see the header). */
export type GridMode = 'export' | 'full';

/** Largest |q| of the b-bit grid of a kernel exported at int8 qmax `exportQmax`. */
export function gridQmax(bits: number, exportQmax: number, mode: GridMode): number {
  if (!(Number.isInteger(bits) && bits >= 2 && bits <= 8))
    throw new Error(`mixed-precision: bit widths are integers in [2, 8], got ${bits}`);
  const full = Math.min(2 ** (bits - 1) - 1, exportQmax);
  if (mode === 'full' || bits === 8) return bits === 8 ? exportQmax : full;
  let q = full;
  while (exportQmax % q !== 0) q--;
  return q;
}

/** One quantizable kernel: its layer, its number of weights, and the grid of each bit width. */
export interface QuantLayer {
  readonly layer: string;
  readonly weights: number;
}

/**
 * Sensitivity of each layer to each bit width: mean KL(p_float || p_quant) over the images of
 * `batches` (NHWC inputs), with only that layer's kernel fake-quantized to `qmaxOf(bits)` and every
 * other weight float, in inference mode. `model`'s outputs are logits. Returns drop[layer][bits]
 * (nats per image, >= 0) and, for the log, the % of images whose top-1 stays the float model's.
 */
export function sensitivityScan(
  model: tfl.LayersModel,
  layers: readonly string[],
  bits: readonly number[],
  qmaxOf: (bits: number) => number,
  batches: readonly tf.Tensor[],
): { drop: Map<string, Map<number, number>>; agreement: Map<string, Map<number, number>> } {
  if (batches.length === 0) throw new Error('mixed-precision: the sensitivity scan needs at least one batch');
  const kernels = new Map(prunableKernels(model, layers).map((k) => [k.layer, k.kernel]));
  const images = batches.reduce((a, b) => a + b.shape[0]!, 0);
  const refs = batches.map((x) =>
    tf.tidy(() => {
      const logits = model.predict(x) as tf.Tensor2D;
      return { logp: tf.keep(tf.logSoftmax(logits)), top: tf.keep(tf.argMax(logits, -1)) };
    }),
  );
  const drop = new Map<string, Map<number, number>>();
  const agreement = new Map<string, Map<number, number>>();
  try {
    for (const layer of layers) {
      const kernel = kernels.get(layer)!;
      const saved = tf.keep(kernel.clone());
      drop.set(layer, new Map());
      agreement.set(layer, new Map());
      try {
        for (const b of bits) {
          tf.tidy(() => kernel.assign(fakeQuantKernel(saved, qmaxOf(b))));
          let kl = 0;
          let same = 0;
          for (const [i, x] of batches.entries()) {
            const { logp, top } = refs[i]!;
            const [k, s] = tf.tidy(() => {
              const logits = model.predict(x) as tf.Tensor2D;
              const q = tf.logSoftmax(logits);
              const perImage = tf.sum(tf.mul(tf.exp(logp), tf.sub(logp, q)), -1);
              return [tf.sum(perImage), tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), top), 'float32'))];
            });
            kl += k!.dataSync()[0]!;
            same += s!.dataSync()[0]!;
            tf.dispose([k!, s!]);
          }
          drop.get(layer)!.set(b, Math.max(0, kl / images));
          agreement.get(layer)!.set(b, (100 * same) / images);
        }
      } finally {
        kernel.assign(saved);
        saved.dispose();
      }
    }
  } finally {
    for (const r of refs) tf.dispose([r.logp, r.top]);
  }
  return { drop, agreement };
}

/** A layer's options for the choice: its weights and the predicted drop at each bit width. */
export interface BitsChoiceInput {
  readonly layer: string;
  readonly weights: number;
  /** Predicted drop per bit width; a layer with one entry is fixed at that width. */
  readonly drop: ReadonlyMap<number, number>;
}

/** Most cells the knapsack table may take (layers x budget units) before its unit is coarsened. */
const MAX_CELLS = 20_000_000;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * The bit width of each layer that minimises the total predicted drop with sum(weights x bits) <=
 * `budgetBits`: a multiple-choice knapsack solved exactly by dynamic programming over the budget in
 * units of the gcd of all costs. When layers x units exceeds MAX_CELLS the unit is made coarser and
 * every cost rounded up to it (the budget still holds; the optimum is then over slightly inflated
 * costs; a budget so close to the narrowest choice that the rounding loses it gets the narrowest
 * choice). Among equal drops the wider bits win. Throws when even the narrowest bits exceed the budget.
 */
export function chooseBits(layers: readonly BitsChoiceInput[], budgetBits: number): Map<string, number> {
  const opts = layers.map((l) => [...l.drop].sort((a, b) => b[0] - a[0]));
  const least = layers.reduce((a, l, i) => a + l.weights * opts[i]!.at(-1)![0], 0);
  if (least > budgetBits)
    throw new Error(
      `mixed-precision: the budget of ${budgetBits} weight bits (${(budgetBits / 8).toFixed(0)} B) is below the smallest choice, ${least} bits (${least / 8} B: every layer at its narrowest allowed width)`,
    );
  let unit = layers.reduce((g, l, i) => opts[i]!.reduce((h, [b]) => gcd(h, l.weights * b), g), 0);
  if (layers.length * (budgetBits / unit + 1) > MAX_CELLS)
    unit = Math.ceil((layers.length * budgetBits) / MAX_CELLS);
  const cap = Math.floor(budgetBits / unit);
  // best[c]: least drop of the layers so far within c units; pick[l][c]: the option layer l took.
  let best = new Float64Array(cap + 1);
  const pick = layers.map(() => new Int8Array(cap + 1).fill(-1));
  for (const [l, layer] of layers.entries()) {
    const next = new Float64Array(cap + 1).fill(Number.POSITIVE_INFINITY);
    for (const [o, [b, d]] of opts[l]!.entries()) {
      const cost = Math.ceil((layer.weights * b) / unit);
      for (let c = cost; c <= cap; c++) {
        const v = best[c - cost]! + d;
        if (v < next[c]! - 1e-15) {
          next[c] = v;
          pick[l]![c] = o;
        }
      }
    }
    best = next;
  }
  // Only with a coarsened unit: the rounded-up costs of even the narrowest widths overrun the cap,
  // though their exact sum fits (checked above). Every layer at its narrowest width is then the
  // one choice known to fit, and the budget is that close to it that little else could.
  if (!Number.isFinite(best[cap]!)) return new Map(layers.map((l, i) => [l.layer, opts[i]!.at(-1)![0]]));
  const chosen = new Map<string, number>();
  let c = cap;
  for (let l = layers.length - 1; l >= 0; l--) {
    const [b] = opts[l]![pick[l]![c]!]!;
    chosen.set(layers[l]!.layer, b);
    c -= Math.ceil((layers[l]!.weights * b) / unit);
  }
  return new Map(layers.map((l) => [l.layer, chosen.get(l.layer)!]));
}

/** Bytes of the kernels packed at `bits` per weight (rounded up per layer). */
export function packedBytes(layers: readonly QuantLayer[], bits: ReadonlyMap<string, number>): number {
  return layers.reduce((a, l) => a + Math.ceil((l.weights * (bits.get(l.layer) ?? 32)) / 8), 0);
}
