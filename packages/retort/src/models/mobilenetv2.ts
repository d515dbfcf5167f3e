/**
 * MobileNetV2: "MobileNetV2: Inverted Residuals and Linear Bottlenecks", Sandler, Howard, Zhu,
 * Zhmoginov & Chen, CVPR 2018, in the CIFAR form RepDistiller uses (models/mobilenetv2.py, from
 * "Knowledge Distillation via Route Constrained Optimization"); its 'MobileNetV2' entry is
 * mobile_half = expansion 6, width 0.5, which are this builder's defaults.
 *
 * Structure: conv3x3 stride 2 -> BN -> ReLU (int(32 * width) channels), seven stages of inverted
 * residual blocks (t, c, n, s) = (1, 16, 1, 1), (T, 24, 2, 1), (T, 32, 3, 2), (T, 64, 4, 2),
 * (T, 96, 3, 1), (T, 160, 3, 2), (T, 320, 1, 1) with c scaled to int(c * width), conv1x1 ->
 * BN -> ReLU to 1280 channels (int(1280 * width) when width > 1), global average pool, Linear.
 * Unlike torchvision, every block has the expansion conv, also where t = 1. A block: conv1x1
 * (in -> in * t) -> BN -> ReLU -> depthwise 3x3 (stride s) -> BN -> ReLU -> conv1x1 (-> out) -> BN,
 * plus the input when s = 1 and in = out. No conv has a bias. RepDistiller requires H % 32 = 0 and
 * pools with AvgPool2d(H / 16); here any size works and the pool is global (the same at 32x32).
 * For architecture search, stages 1-6 may each take their own expansion, depthwise kernel (odd; 3
 * and 5 in the MnasNet and Once-for-All spaces) and block count; stage 0 keeps t = 1, 3x3, one block.
 *
 * Layer names (parameterised layers carry the PyTorch state_dict prefix):
 *   conv1.0.pad, conv1.0, conv1.1, conv1.2     stem: padding, conv, BN, ReLU (f0 = conv1.2)
 *   blocks.{i}.{j}.conv.0 .. conv.7           block j of stage i (i = 0..6): 0 conv1x1, 1 BN,
 *                                             2 ReLU, 3 depthwise (3.pad when stride 2), 4 BN,
 *                                             5 ReLU, 6 conv1x1, 7 BN
 *   blocks.{i}.{j}.add                        residual sum, where the block has one
 *   conv2.0, conv2.1, conv2.2                 conv1x1, BN, ReLU
 *   avgpool ([N, C]), classifier.0 (logits)
 * Stage taps (`mobileNetV2Taps`): f0 = conv1.2, then the last block output of stages 1, 2, 4 and
 * 6, then avgpool. Block outputs are linear (no ReLU), so RepDistiller has no separate
 * pre-activation: preact = output.
 *
 * Initialisation as RepDistiller: convs N(0, 2 / (k * k * out_channels)) (depthwise: out_channels
 * = its channels), BN gamma 1 / beta 0, classifier N(0, 0.01) with zero bias.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { hwc, type ModelTaps, Net, resolveOptions, type Sym, type ZooOptions } from './common.js';

export interface MobileNetV2Options extends ZooOptions {
  /** Channel multiplier; default 0.5 (RepDistiller's mobile_half). */
  widthMult?: number;
  /** Expansion factor T of stages 1-6 (stage 0 keeps 1), or one per stage 1-6; default 6. */
  expansion?: number | readonly number[];
  /** Depthwise kernel (odd) of stages 1-6 (stage 0 keeps 3), or one per stage 1-6; default 3. */
  kernel?: number | readonly number[];
  /** Blocks of stages 1-6 (stage 0 keeps 1), or one count per stage 1-6; default [2, 3, 4, 3, 3, 1]. */
  depths?: number | readonly number[];
}

/** (expansion or 'T', channels, blocks, stride) per stage; options may change T, k and blocks. */
const STAGES: readonly (readonly [number | 'T', number, number, number])[] = [
  [1, 16, 1, 1],
  ['T', 24, 2, 1],
  ['T', 32, 3, 2],
  ['T', 64, 4, 2],
  ['T', 96, 3, 1],
  ['T', 160, 3, 2],
  ['T', 320, 1, 1],
];

/** Inverted residual block `p`: [N, H, W, Cin] -> [N, H/stride, W/stride, cout]. */
function invertedResidual(
  net: Net,
  x: Sym,
  p: string,
  cout: number,
  stride: number,
  t: number,
  k: number,
): Sym {
  const cin = hwc(x)[2];
  let y = net.relu(net.bn(net.conv(x, `${p}.conv.0`, cin * t, 1), `${p}.conv.1`), `${p}.conv.2`);
  y = net.relu(net.bn(net.depthwise(y, `${p}.conv.3`, k, stride), `${p}.conv.4`), `${p}.conv.5`);
  y = net.bn(net.conv(y, `${p}.conv.6`, cout, 1), `${p}.conv.7`);
  return stride === 1 && cin === cout ? net.add([x, y], `${p}.add`) : y;
}

/** Per-stage settings of all seven stages, from a number or a list for stages 1-6. */
interface StagePlan {
  t: number[];
  k: number[];
  n: number[];
}

/** One value per stage 1-6 from a number or a 6-list, each passing `ok`; stage 0 gets `first`. */
function perStage(
  v: number | readonly number[],
  key: string,
  first: number,
  ok: (x: number) => boolean,
  want: string,
): number[] {
  const list = typeof v === 'number' ? Array<number>(STAGES.length - 1).fill(v) : [...v];
  if (list.length !== STAGES.length - 1 || !list.every(ok))
    throw new Error(
      `mobileNetV2: ${key} must be ${want}, or 6 of them (stages 1-6), got ${JSON.stringify(v)}`,
    );
  return [first, ...list];
}

function checked(opts: MobileNetV2Options): { width: number; plan: StagePlan } {
  const width = opts.widthMult ?? 0.5;
  if (!(width > 0) || !Number.isFinite(width) || Math.trunc(16 * width) < 1)
    throw new Error(`mobileNetV2: widthMult must be a number with int(16 * widthMult) >= 1, got ${width}`);
  const positive = (x: number) => Number.isInteger(x) && x >= 1;
  const plan: StagePlan = {
    t: perStage(opts.expansion ?? 6, 'expansion', 1, positive, 'a positive integer'),
    // Even kernels have no centre: PyTorch's padding k // 2 would change the map size.
    k: perStage(opts.kernel ?? 3, 'kernel', 3, (x) => positive(x) && x % 2 === 1, 'an odd positive integer'),
    n: perStage(
      opts.depths ?? STAGES.slice(1).map((st) => st[2]),
      'depths',
      1,
      positive,
      'a positive integer',
    ),
  };
  return { width, plan };
}

/**
 * MobileNetV2 (default: RepDistiller's mobile_half). Input [N, H, W, C] (default 32x32x3), output
 * logits [N, numClasses] (default 100). Any H, W >= 1 work.
 */
export function mobileNetV2(opts: MobileNetV2Options = {}): tfl.LayersModel {
  const { width, plan } = checked(opts);
  const { shape, numClasses } = resolveOptions(opts, 'mobileNetV2', 1);
  const net = new Net(opts.seed, 'kaiming-fan-out');
  const input = tfl.input({ shape, name: 'input' });
  let x = net.conv(input, 'conv1.0', Math.trunc(32 * width), 3, 2);
  x = net.relu(net.bn(x, 'conv1.1'), 'conv1.2');
  for (const [i, [, c, , s]] of STAGES.entries()) {
    const cout = Math.trunc(c * width);
    for (let j = 0; j < plan.n[i]!; j++) {
      x = invertedResidual(net, x, `blocks.${i}.${j}`, cout, j === 0 ? s : 1, plan.t[i]!, plan.k[i]!);
    }
  }
  const last = width > 1 ? Math.trunc(1280 * width) : 1280;
  x = net.relu(net.bn(net.conv(x, 'conv2.0', last, 1), 'conv2.1'), 'conv2.2');
  const logits = net.dense(net.gap(x, 'avgpool'), 'classifier.0', numClasses, 'normal-0.01');
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? 'mobilenetv2' });
}

/**
 * Feature taps of `mobileNetV2` (the same for every width, expansion and kernel); `depths` as the
 * builder's option, when the model was built with one.
 */
export function mobileNetV2Taps(depths?: number | readonly number[]): ModelTaps {
  const { n } = checked(depths === undefined ? {} : { depths }).plan;
  const last = (i: number) => `blocks.${i}.${n[i]! - 1}`;
  // A stage's last block is stride 1 with in = out unless the stage has one block.
  const out = (i: number): string => (n[i]! > 1 ? `${last(i)}.add` : `${last(i)}.conv.7`);
  const stages = [1, 2, 4, 6].map((i) => ({ output: out(i), preact: out(i) }));
  return {
    stages: [{ output: 'conv1.2', preact: 'conv1.2' }, ...stages, { output: 'avgpool', preact: 'avgpool' }],
    bnBeforeRelu: [1, 2, 4, 6].map((i) => `${last(i)}.conv.7`),
  };
}
