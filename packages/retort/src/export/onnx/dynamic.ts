/**
 * Dynamic int8 pieces of the ONNX export (opset 13), as in PyTorch's quantize_dynamic and
 * onnxruntime's quantize_dynamic: weights quantized offline, activations at run time.
 *
 * An activation is quantized by DynamicQuantizeLinear (uint8, one scale and zero point per tensor,
 * i.e. per batch, from that run's min and max widened to contain 0), once however many layers read
 * it. A quantized Dense or conv is a MatMulInteger (uint8 x int8) followed by Cast, a Mul by
 * x_scale x w_scale (w_scale per output channel or one per tensor) and the float bias, which
 * onnxruntime 1.30 fuses into DynamicQuantizeMatMul (when DynamicQuantizeLinear feeds it directly)
 * or MatMulIntegerToFloat, both on prepacked weights. Convs run on NHWC: a 1x1 stride-1 conv is
 * that MatMul over the channel axis; any other is an im2col on the uint8 input (Pad with the zero
 * point, i.e. with an exact real 0, then kh x kw strided Slices concatenated along channels in
 * (i, j, c) order, which is the HWIO kernel flattened to [kh * kw * C, O]).
 *
 * Why not ConvInteger: in onnxruntime 1.30 (CPU, 1 thread, ResNet-8 on 28x28x1 at batch 64)
 * DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul -> Add ran 5.5x slower than fp32 with int8
 * weights, 1.7x with uint8 weights, and nothing in it was fused; depthwise ConvInteger (group = C,
 * MobileNetV2) was 10x slower. Its w_zero_point must be one scalar anyway ("Non per-tensor
 * quantization is not supported now"); symmetric weights have a single zero point (0) at any
 * scale granularity, per-channel scales live in the float Mul.
 *
 * Which layers (`dynamicPlan`): every Dense and every 1x1 stride-1 conv; a conv that needs the
 * im2col only when its input and output channels are both >= minChannels (default 32): one 3x3
 * conv on 16x16 maps at batch 1 and 32 took 1.26 and 1.05x fp32's time with C = O = 16, 0.92
 * and 0.65x with 32, 0.54x with 64, 0.36-0.40x with 128 (the im2col copies chunks of C bytes);
 * a 1x1 stride-2 conv 16 -> 32 took 1.13-1.15x. Depthwise convs stay float.
 *
 * Weights are int8 in [-qmax, qmax], run by onnxruntime's uint8 x int8 kernels; qmax is the
 * target's (target.ts): 63 for `portable`, whose pairs of products cannot saturate the int16 sums
 * of the AVX2 kernels (a Zen 3 gave 49% agreement with fp32 on 8-bit weights), 127 for `vnni`
 * and `arm64`.
 */
import { quantizeInt8 } from '../../compress/quantize/qparams.js';
import { F32, type GraphBuilder, I8 } from './graph.js';
import type { WeightGranularity } from './quant.js';

/** Options of the dynamic int8 export (`exportOnnx(model, { dynamic })`). */
export interface DynamicQuantOptions {
  /**
   * Convs that need an im2col (kernel > 1 or stride > 1) are quantized only when their input and
   * output channels are both at least this; smaller ones stay float. Default 32; 1 quantizes every
   * conv but the depthwise ones.
   */
  minChannels?: number;
}

/** The conv shape facts the plan looks at. */
export interface ConvShape {
  depthwise: boolean;
  inChannels: number;
  outChannels: number;
  kernel: [number, number];
  strides: [number, number];
}

/** Where a conv samples: pads are [top, left, bottom, right], outHW the output's H and W. */
export interface ConvGeometry {
  strides: [number, number];
  dilations: [number, number];
  pads: readonly number[];
  outHW: [number, number];
}

/** Whether the dynamic export quantizes a conv (see the header); Dense layers always are. */
export function dynamicPlan(conv: ConvShape, opts: DynamicQuantOptions = {}): boolean {
  if (conv.depthwise) return false;
  const pointwise = conv.kernel[0] * conv.kernel[1] * conv.strides[0] * conv.strides[1] === 1;
  const min = opts.minChannels ?? 32;
  return pointwise || Math.min(conv.inChannels, conv.outChannels) >= min;
}

/** Writes DynamicQuantizeLinear / MatMulInteger nodes and int8 weights into one graph. */
export class DynamicQuantizer {
  /** Float value name -> its DynamicQuantizeLinear outputs [q, scale, zero point]. */
  private readonly acts = new Map<string, [string, string, string]>();

  constructor(
    private readonly g: GraphBuilder,
    readonly weights: WeightGranularity,
    /** Largest |q| of the weights (the target's, target.ts). */
    readonly qmax: number,
  ) {}

  /** uint8 [q, scale, zero point] of a float tensor, quantized once per run. */
  private act(x: string): [string, string, string] {
    let a = this.acts.get(x);
    if (a === undefined) {
      const base = this.g.fresh(`${x}.dql`);
      a = [`${base}.q`, `${base}.scale`, `${base}.zp`];
      this.g.nodes.push({ opType: 'DynamicQuantizeLinear', input: [x], output: a, name: base });
      this.acts.set(x, a);
    }
    return a;
  }

  /**
   * uint8 `xq` [..., K] times the [K, O] float `kernel` quantized to int8, back to float: Cast,
   * Mul by x_scale x w_scale[O], Add `bias` [O]. Returns `out`.
   */
  private matmulInteger(
    base: string,
    x: [string, string, string],
    kernel: Float32Array,
    dims: [number, number],
    bias: Float32Array | undefined,
    out: string,
  ): string {
    const g = this.g;
    const [xq, xs, xz] = x;
    const { q, scales } = quantizeInt8(kernel, dims, 1, this.weights === 'per-channel', this.qmax);
    const w = g.bytes(`${base}.W.q`, I8, q, dims);
    const wz = g.bytes(`${base}.W.zp`, I8, Int8Array.of(0), []);
    const acc = g.node('MatMulInteger', [xq, w, xz, wz], `${base}.acc`);
    const ws = g.f32(`${base}.W.scale`, scales, scales.length === 1 ? [] : [dims[1]]);
    const s = g.node('Mul', [xs, ws], `${base}.rescale`);
    const f = g.node('Cast', [acc], `${base}.float`, { to: F32 });
    if (bias === undefined) return g.node('Mul', [f, s], out);
    const y = g.node('Mul', [f, s], `${base}.scaled`);
    return g.node('Add', [y, g.f32(`${base}.B`, bias, [bias.length])], out);
  }

  /** Dense: float `x` [N, in], `kernel` [in, out], `bias` [out]; output `out` [N, out]. */
  dense(
    base: string,
    x: string,
    kernel: { data: Float32Array; shape: number[] },
    bias: Float32Array | undefined,
    out: string,
  ): string {
    const [k, o] = kernel.shape as [number, number];
    return this.matmulInteger(base, this.act(x), kernel.data, [k, o], bias, out);
  }

  /**
   * Conv of float NHWC `x` [N, H, W, C] with the HWIO `kernel` [kh, kw, C, O] and `bias` [O],
   * sampled as `geometry` says. Output `out`, NHWC [N, Ho, Wo, O].
   */
  conv(
    base: string,
    x: string,
    kernel: { data: Float32Array; shape: number[] },
    bias: Float32Array | undefined,
    geometry: ConvGeometry,
    out: string,
  ): string {
    const g = this.g;
    const [kh, kw, c, o] = kernel.shape as [number, number, number, number];
    const [sh, sw] = geometry.strides;
    const [dh, dw] = geometry.dilations;
    const [pt = 0, pl = 0, pb = 0, pr = 0] = geometry.pads;
    const [ho, wo] = geometry.outHW;
    const xq = this.act(x);
    let cols = xq[0];
    if (kh * kw * sh * sw > 1) {
      let src = xq[0];
      if (pt + pl + pb + pr > 0) {
        const pads = g.i64(`${base}.pads`, [0, pt, pl, 0, 0, pb, pr, 0]);
        src = g.node('Pad', [src, pads, xq[2]], `${base}.pad`, { mode: 'constant' });
      }
      const axes = g.i64(`${base}.axes`, [1, 2]);
      const steps = g.i64(`${base}.steps`, [sh, sw]);
      const windows: string[] = [];
      for (let i = 0; i < kh; i++)
        for (let j = 0; j < kw; j++) {
          const at = `${base}.win${i}_${j}`;
          const starts = g.i64(`${at}.starts`, [i * dh, j * dw]);
          const ends = g.i64(`${at}.ends`, [i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1]);
          windows.push(g.node('Slice', [src, starts, ends, axes, steps], at));
        }
      cols = windows.length === 1 ? windows[0]! : g.node('Concat', windows, `${base}.cols`, { axis: 3 });
    }
    return this.matmulInteger(base, [cols, xq[1], xq[2]], kernel.data, [kh * kw * c, o], bias, out);
  }
}
