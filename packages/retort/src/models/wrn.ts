/**
 * Wide residual networks: "Wide Residual Networks", Zagoruyko & Komodakis, BMVC 2016, as defined by
 * RepDistiller (models/wrn.py): WRN-depth-widen with depth = 6n + 4, widths [16, 16k, 32k, 64k].
 *
 * Structure: conv3x3 (3 -> 16), three stages of n pre-activation blocks (the first of stages 2
 * and 3 with stride 2), then BN -> ReLU -> global average pool (RepDistiller's avg_pool2d(8), the
 * same at 32x32) -> Linear. A block: a = ReLU(BN(x)); y = conv3x3(ReLU(BN(conv3x3(a)))); output
 * y + x when in and out widths match, else y + conv1x1(a) (stride s). Note the reference's quirk,
 * kept here: an identity shortcut adds the raw x, a projection shortcut sees the activated a.
 * No conv has a bias; dropout is off in RepDistiller and absent here.
 *
 * Layer names (parameterised layers carry the PyTorch state_dict prefix); blocks are
 * `block{s}.layer.{b}`, s = 1..3, b = 0..n-1:
 *   conv1                                        stem (f0, no activation)
 *   block{s}.layer.{b}.bn1, .relu1
 *   block{s}.layer.{b}.conv1.pad                 zero padding of a stride-2 conv1 (see common.ts)
 *   block{s}.layer.{b}.conv1, .bn2, .relu2, .conv2
 *   block{s}.layer.{b}.convShortcut              projection shortcut, where widths differ
 *   block{s}.layer.{b}.add                       the block's output
 *   bn1, relu, avgpool ([N, C]), fc (logits)
 * Stage taps (`wrnTaps`): f0 = conv1, f{s} = block{s}.layer.{n-1}.add, f4 = avgpool. Pre-activation
 * features as RepDistiller computes them: f1 -> block2.layer.0.bn1, f2 -> block3.layer.0.bn1,
 * f3 -> bn1 (the next BN applied to the stage output).
 *
 * Initialisation as RepDistiller: convs N(0, 2 / (k * k * out_channels)), BN gamma 1 / beta 0, fc
 * weight PyTorch's Linear default (U(+-1/sqrt(in))) with zero bias.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { hwc, type ModelTaps, Net, resolveOptions, type Sym, type ZooOptions } from './common.js';

function blocksPerStage(depth: number): number {
  if (!Number.isInteger(depth) || depth < 10 || (depth - 4) % 6 !== 0)
    throw new Error(`wrn: depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got ${depth}`);
  return (depth - 4) / 6;
}

/** Pre-activation block `p`: [N, H, W, Cin] -> [N, H/stride, W/stride, cout]. */
function wideBlock(net: Net, x: Sym, p: string, cout: number, stride: number): Sym {
  const cin = hwc(x)[2];
  const a = net.relu(net.bn(x, `${p}.bn1`), `${p}.relu1`);
  let y = net.conv(a, `${p}.conv1`, cout, 3, stride);
  y = net.conv(net.relu(net.bn(y, `${p}.bn2`), `${p}.relu2`), `${p}.conv2`, cout, 3);
  if (cin === cout) {
    if (stride !== 1)
      throw new Error(`${p}: stride ${stride} with equal widths has no shortcut in the reference`);
    return net.add([x, y], `${p}.add`);
  }
  return net.add([net.conv(a, `${p}.convShortcut`, cout, 1, stride), y], `${p}.add`);
}

/**
 * WRN-depth-widen. Input [N, H, W, C] (default 32x32x3), output logits [N, numClasses] (default
 * 100). Any H, W >= 1 work; the head pools globally.
 */
export function wrn(depth: number, widen: number, opts: ZooOptions = {}): tfl.LayersModel {
  const n = blocksPerStage(depth);
  const name = `wrn_${depth}_${widen}`;
  if (!Number.isInteger(widen) || widen < 1)
    throw new Error(`${name}: widen factor must be a positive integer, got ${widen}`);
  const { shape, numClasses } = resolveOptions(opts, name, 1);
  const widths = [16, 16 * widen, 32 * widen, 64 * widen];
  const net = new Net(opts.seed, 'kaiming-fan-out');
  const input = tfl.input({ shape, name: 'input' });
  let x = net.conv(input, 'conv1', 16, 3);
  for (let s = 1; s <= 3; s++) {
    for (let b = 0; b < n; b++) {
      x = wideBlock(net, x, `block${s}.layer.${b}`, widths[s]!, s > 1 && b === 0 ? 2 : 1);
    }
  }
  x = net.gap(net.relu(net.bn(x, 'bn1'), 'relu'), 'avgpool');
  const logits = net.dense(x, 'fc', numClasses, 'torch-default-zero-bias');
  return tfl.model({ inputs: input, outputs: logits, name: opts.name ?? name });
}

/** Feature taps of `wrn(depth, widen)` (the same for every widen factor). */
export function wrnTaps(depth: number): ModelTaps {
  const last = blocksPerStage(depth) - 1;
  const out = (s: number) => `block${s}.layer.${last}.add`;
  const bnBeforeRelu = ['block2.layer.0.bn1', 'block3.layer.0.bn1', 'bn1'];
  return {
    stages: [
      { output: 'conv1', preact: 'conv1' },
      ...bnBeforeRelu.map((bn, i) => ({ output: out(i + 1), preact: bn })),
      { output: 'avgpool', preact: 'avgpool' },
    ],
    bnBeforeRelu,
  };
}
