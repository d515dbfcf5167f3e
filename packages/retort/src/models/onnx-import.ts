/**
 * An ONNX CNN (exported from PyTorch, Keras or another framework) imported as a trainable
 * tfjs-layers model, so that every compression stage (pruning, QAT, low-rank, clustering, KD
 * fine-tuning) works on the model a user already has. The result is an ordinary functional model
 * built from tfjs's standard layers (and the zoo's batch norm), NHWC, with the file's weights.
 *
 * Layout: PyTorch graphs are NCHW. Every 4-D tensor is held NHWC here and remembers which order
 * the ONNX graph means ('nchw' or 'nhwc'); only the few places where the order is visible in the
 * numbers are translated: conv kernels [M, C/g, kh, kw] -> [kh, kw, C/g, M], a Flatten of a map
 * larger than 1x1 (a Permute to channels-first first, so a following Gemm reads the features in
 * PyTorch's order), a channel Concat (axis 1 -> last axis). A Transpose that only switches the
 * meaning between NCHW and NHWC (as Keras exports start with) costs nothing.
 *
 * Padding: PyTorch pads symmetrically where tfjs's 'same' puts the extra row at the end, so
 * padding is an explicit ZeroPadding2D before a 'valid' conv or pool, except stride-1 symmetric
 * padding, which 'same' matches. A padded MaxPool is exact with zero padding only when its input
 * is non-negative (after a ReLU, ReLU6 or Sigmoid: then a zero never exceeds the window's maximum);
 * any other padded MaxPool is refused. GlobalAveragePool's [N, C, 1, 1] is held as [N, C] until a
 * consumer needs a map (a 1x1 conv of a squeeze-excitation gate, a broadcast Mul).
 *
 * Supported: Conv (groups 1 or depthwise), BatchNormalization, Relu, Clip (0..6 or 0..inf),
 * LeakyRelu, Sigmoid, Tanh, Add, Mul, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul (+ Add
 * of a constant bias), Flatten, Reshape to [N, F], Concat, Transpose (layout), Pad (zeros),
 * Identity, Dropout, Constant. Anything else fails naming the node and its op type.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { onnx as O } from 'onnx-proto';
import onnxProto from 'onnx-proto';
import { RetortError } from '../util/errors.js';
import { fusedBatchNorm } from './batchnorm.js';
import { Attrs, type ConstValue, num, tensorValues } from './onnx-values.js';

type Sym = tfl.SymbolicTensor;

export interface OnnxImportOptions {
  /** Order of the file's image input: 'nchw' (PyTorch) or 'nhwc' (TensorFlow/Keras). */
  layout: 'nchw' | 'nhwc';
  /** [H, W, C] of the input where the file leaves any of them open; must agree where it does not. */
  inputShape?: readonly [number, number, number] | undefined;
  /** The tfjs model's name (default 'imported'). */
  name?: string | undefined;
  /** The file the bytes came from, for messages. */
  file?: string | undefined;
}

export interface OnnxImport {
  model: tfl.LayersModel;
  /** [H, W, C] of the model's input. */
  inputShape: [number, number, number];
  numClasses: number;
  /** ONNX op types seen, with counts (for the log). */
  ops: Record<string, number>;
}

/** A tensor of the graph being imported. */
type Val =
  /** Physical [N, H, W, C]; `layout` is the order the ONNX graph means. */
  | { kind: 'map'; t: Sym; layout: 'nchw' | 'nhwc'; nonNeg: boolean }
  /** Physical [N, F]; `spatial`: the graph means [N, F, 1, 1] (a global pool's output). */
  | { kind: 'vec'; t: Sym; spatial: boolean; nonNeg: boolean }
  | { kind: 'const'; v: ConstValue };

const SUPPORTED =
  'Conv, BatchNormalization, Relu, Clip, LeakyRelu, Sigmoid, Tanh, Add, Mul, MaxPool, AveragePool, GlobalAveragePool, Gemm, MatMul, Flatten, Reshape, Concat, Transpose, Pad, Identity, Dropout, Constant';

/** Reads `bytes` as an ONNX model and builds the tfjs model (weights set). */
export function importOnnx(bytes: Uint8Array, opts: OnnxImportOptions): OnnxImport {
  const file = opts.file ?? 'ONNX model';
  let proto: O.ModelProto;
  try {
    proto = onnxProto.onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new RetortError(`${file}: not an ONNX model (${(e as Error).message})`, { file });
  }
  const graph = proto.graph;
  if (!graph || (graph.node ?? []).length === 0)
    throw new RetortError(`${file}: the file holds no graph`, { file });
  return new Importer(graph, opts, file).run();
}

class Importer {
  private readonly vals = new Map<string, Val>();
  private readonly readers = new Map<string, number>();
  private readonly names = new Set<string>();
  private readonly weights: { layer: tfl.layers.Layer; values: { data: Float64Array; shape: number[] }[] }[] =
    [];
  private readonly fused = new Map<string, string>();
  private readonly ops: Record<string, number> = {};

  constructor(
    private readonly graph: O.IGraphProto,
    private readonly opts: OnnxImportOptions,
    private readonly file: string,
  ) {}

  run(): OnnxImport {
    const g = this.graph;
    for (const t of g.initializer ?? [])
      this.vals.set(t.name ?? '', { kind: 'const', v: tensorValues(t, this.file) });
    for (const n of g.node ?? [])
      for (const i of n.input ?? []) if (i) this.readers.set(i, (this.readers.get(i) ?? 0) + 1);
    const inputs = (g.input ?? []).filter((i) => !this.vals.has(i.name ?? ''));
    if (inputs.length !== 1)
      this.fail(`expected one image input, found ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
    const input = inputs[0]!;
    const shape = this.inputShape(input);
    const x = tfl.input({ shape, name: 'input' });
    this.vals.set(input.name ?? '', { kind: 'map', t: x, layout: this.opts.layout, nonNeg: false });
    for (const node of g.node ?? []) {
      const op = node.opType ?? '';
      this.ops[op] = (this.ops[op] ?? 0) + 1;
      const out = node.output?.[0];
      if (!out) this.fail(`node '${node.name}' (${op}) has no output`);
      const fusedInto = this.fused.get(out);
      this.vals.set(out, fusedInto !== undefined ? this.vals.get(fusedInto)! : this.guarded(node, op));
    }
    const outs = g.output ?? [];
    if (outs.length !== 1)
      this.fail(
        `expected one output (the logits), found ${outs.length} (${outs.map((o) => o.name).join(', ')})`,
      );
    const name = outs[0]!.name ?? '';
    const y = this.vals.get(name);
    if (y?.kind !== 'vec')
      this.fail(
        `output '${name}' is not a [N, classes] tensor (${y?.kind === 'map' ? 'a 4-D map' : 'a constant'})`,
      );
    const model = tfl.model({ inputs: x, outputs: y.t, name: this.opts.name ?? 'imported' });
    for (const w of this.weights)
      w.layer.setWeights(w.values.map((v) => tf.tensor(Float32Array.from(v.data), v.shape)));
    return { model, inputShape: shape, numClasses: y.t.shape[1] as number, ops: this.ops };
  }

  private fail(msg: string): never {
    throw new RetortError(`${this.file}: ${msg}`, { file: this.file });
  }

  private inputShape(input: O.IValueInfoProto): [number, number, number] {
    const dims = (input.type?.tensorType?.shape?.dim ?? []).map((d) =>
      d.dimValue !== undefined && d.dimValue !== null && num(d.dimValue) > 0 ? num(d.dimValue) : null,
    );
    if (dims.length !== 4)
      this.fail(`input '${input.name}' has rank ${dims.length}, expected an image batch of rank 4`);
    const [, a, b, c] = dims;
    const fixed = this.opts.layout === 'nchw' ? [b, c, a] : [a, b, c];
    const given = this.opts.inputShape;
    return fixed.map((f, i) => {
      const g = given?.[i];
      if (f !== null && f !== undefined && g !== undefined && f !== g)
        this.fail(`input '${input.name}' has ${['height', 'width', 'channels'][i]} ${f}, the data ${g}`);
      const v = f ?? g;
      if (v === undefined)
        this.fail(
          `input '${input.name}' leaves its ${['height', 'width', 'channels'][i]} open; give the data's shape`,
        );
      return v;
    }) as [number, number, number];
  }

  /** A unique layer name from the node's name ('/layer1/layer1.0/conv1/Conv' -> 'layer1.layer1.0.conv1.Conv'). */
  private layerName(node: O.INodeProto, suffix = ''): string {
    const base =
      (node.name ?? '')
        .replace(/^\/+/, '')
        .replace(/\//g, '.')
        .replace(/[^A-Za-z0-9_.-]/g, '_') || `${node.opType}_${this.names.size}`;
    let name = `${base}${suffix}`;
    for (let k = 1; this.names.has(name); k++) name = `${base}${suffix}_${k}`;
    this.names.add(name);
    return name;
  }

  private val(node: O.INodeProto, i: number): Val {
    const name = node.input?.[i];
    const v = name ? this.vals.get(name) : undefined;
    if (!v)
      this.fail(`node '${node.name}' (${node.opType}) reads '${name ?? ''}', which no earlier node makes`);
    return v;
  }

  private constIn(node: O.INodeProto, i: number, what: string): ConstValue {
    const v = this.val(node, i);
    if (v.kind !== 'const')
      this.fail(
        `node '${node.name}' (${node.opType}): its ${what} must be a constant (an initializer), not computed`,
      );
    return v.v;
  }

  /** A 4-D map in the graph's NCHW meaning (a [N, C] global-pool result becomes [N, 1, 1, C]). */
  private mapIn(node: O.INodeProto, i: number): Extract<Val, { kind: 'map' }> {
    const v = this.val(node, i);
    if (v.kind === 'vec' && v.spatial) {
      const c = v.t.shape[1] as number;
      const t = tfl.layers
        .reshape({ name: this.layerName(node, '.to_map'), targetShape: [1, 1, c] })
        .apply(v.t) as Sym;
      return { kind: 'map', t, layout: 'nchw', nonNeg: v.nonNeg };
    }
    if (v.kind !== 'map' || v.layout !== 'nchw')
      this.fail(
        `node '${node.name}' (${node.opType}) needs an NCHW image tensor, got ${v.kind === 'map' ? 'an NHWC one (transpose it to NCHW first)' : v.kind === 'vec' ? 'a [N, F] matrix' : 'a constant'}`,
      );
    return v;
  }

  private symIn(node: O.INodeProto, i: number): Exclude<Val, { kind: 'const' }> {
    const v = this.val(node, i);
    if (v.kind === 'const')
      this.fail(`node '${node.name}' (${node.opType}): input ${i} is a constant where a tensor was expected`);
    return v;
  }

  private apply(layer: tfl.layers.Layer, x: Sym | Sym[]): Sym {
    return layer.apply(x) as Sym;
  }

  /** Same kind and layout as `like`, holding `t`. */
  private like(like: Exclude<Val, { kind: 'const' }>, t: Sym, nonNeg: boolean): Val {
    return like.kind === 'map' ? { ...like, t, nonNeg } : { ...like, t, nonNeg };
  }

  /** `node`, with tfjs's own complaints (shapes that do not fit) turned into one naming the node. */
  private guarded(node: O.INodeProto, op: string): Val {
    try {
      return this.node(node, op);
    } catch (e) {
      if (e instanceof RetortError) throw e;
      return this.fail(`node '${node.name}' (${op}): ${(e as Error).message}`);
    }
  }

  private node(node: O.INodeProto, op: string): Val {
    const a = new Attrs(node);
    switch (op) {
      case 'Constant': {
        const t = a.tensor('value');
        if (!t) this.fail(`node '${node.name}' (Constant) has no tensor 'value'`);
        return { kind: 'const', v: tensorValues(t, this.file) };
      }
      case 'Identity':
      case 'Dropout':
        return this.val(node, 0);
      case 'Conv':
        return this.conv(node, a);
      case 'BatchNormalization': {
        const x = this.symIn(node, 0);
        const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => this.constIn(node, i, 'statistics'));
        const layer = fusedBatchNorm({
          name: this.layerName(node),
          axis: -1,
          momentum: a.float('momentum', 0.9),
          epsilon: a.float('epsilon', 1e-5),
        });
        const t = this.apply(layer, x.t);
        this.weights.push({
          layer,
          values: [scale!, bias!, mean!, variance!].map((v) => ({ data: v.data, shape: [v.data.length] })),
        });
        return this.like(x, t, false);
      }
      case 'Relu':
      case 'Sigmoid':
      case 'Tanh': {
        const x = this.symIn(node, 0);
        const activation = op === 'Relu' ? 'relu' : op === 'Sigmoid' ? 'sigmoid' : 'tanh';
        return this.like(
          x,
          this.apply(tfl.layers.activation({ name: this.layerName(node), activation }), x.t),
          op !== 'Tanh',
        );
      }
      case 'LeakyRelu': {
        const x = this.symIn(node, 0);
        return this.like(
          x,
          this.apply(
            tfl.layers.leakyReLU({ name: this.layerName(node), alpha: a.float('alpha', 0.01) }),
            x.t,
          ),
          false,
        );
      }
      case 'Clip': {
        const x = this.symIn(node, 0);
        const bound = (i: number, attr: string, dflt: number) =>
          node.input?.[i] ? this.constIn(node, i, attr).data[0]! : a.float(attr, dflt);
        const lo = bound(1, 'min', -Infinity);
        const hi = bound(2, 'max', Infinity);
        if (lo !== 0 || !(hi > 0))
          this.fail(
            `node '${node.name}' (Clip) clips to [${lo}, ${hi}]; only [0, max] (ReLU, ReLU6) is supported`,
          );
        const layer = Number.isFinite(hi)
          ? tfl.layers.reLU({ name: this.layerName(node), maxValue: hi })
          : tfl.layers.activation({ name: this.layerName(node), activation: 'relu' });
        return this.like(x, this.apply(layer, x.t), true);
      }
      case 'Add':
      case 'Mul':
        return this.merge(node, op);
      case 'Concat': {
        const xs = (node.input ?? []).map((_, i) => this.symIn(node, i));
        const axis = a.int('axis', 1);
        const maps = xs.every((x) => x.kind === 'map');
        const first = xs[0]!;
        const channelAxis = first.kind === 'map' && first.layout === 'nhwc' ? 3 : 1;
        if (
          !(maps || xs.every((x) => x.kind === 'vec')) ||
          (axis !== channelAxis && axis !== channelAxis - (maps ? 4 : 2)) ||
          xs.some((x) => x.kind === 'map' && x.layout !== (first as { layout?: string }).layout)
        )
          this.fail(
            `node '${node.name}' (Concat) joins along axis ${axis}; only channel concatenation of like tensors is supported`,
          );
        const t = this.apply(
          tfl.layers.concatenate({ name: this.layerName(node), axis: -1 }),
          xs.map((x) => x.t),
        );
        return this.like(
          first,
          t,
          xs.every((x) => x.nonNeg),
        );
      }
      case 'MaxPool':
      case 'AveragePool':
        return this.pool(node, a, op);
      case 'GlobalAveragePool': {
        const x = this.mapIn(node, 0);
        const t = this.apply(tfl.layers.globalAveragePooling2d({ name: this.layerName(node) }), x.t);
        return { kind: 'vec', t, spatial: true, nonNeg: x.nonNeg };
      }
      case 'Flatten': {
        if (a.int('axis', 1) !== 1)
          this.fail(`node '${node.name}' (Flatten) has axis ${a.int('axis', 1)}; only 1 is supported`);
        return this.flatten(node, this.symIn(node, 0));
      }
      case 'Reshape': {
        const x = this.symIn(node, 0);
        const shape = Array.from(this.constIn(node, 1, 'shape').data);
        // [N, F] with F = every feature (given, or -1 / 0 left to the runtime): a flatten.
        const features = (x.t.shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
        if (shape.length === 2 && (shape[1] === -1 || shape[1] === features) && shape[0] !== features)
          return this.flatten(node, x);
        if (shape.length === 4 && x.kind === 'vec' && shape[2] === 1 && shape[3] === 1)
          return { ...x, spatial: true };
        return this.fail(
          `node '${node.name}' (Reshape) to [${shape.join(', ')}]; only [N, features] (a flatten) is supported`,
        );
      }
      case 'Transpose': {
        const x = this.symIn(node, 0);
        const perm = a.ints('perm', []).join(',');
        if (x.kind === 'map' && x.layout === 'nhwc' && perm === '0,3,1,2') return { ...x, layout: 'nchw' };
        if (x.kind === 'map' && x.layout === 'nchw' && perm === '0,2,3,1') return { ...x, layout: 'nhwc' };
        return this.fail(
          `node '${node.name}' (Transpose) with perm [${perm}]; only NHWC <-> NCHW layout switches are supported`,
        );
      }
      case 'Pad': {
        const x = this.mapIn(node, 0);
        const pads = node.input?.[1] ? Array.from(this.constIn(node, 1, 'pads').data) : a.ints('pads', []);
        const value = node.input?.[2] ? this.constIn(node, 2, 'value').data[0]! : a.float('value', 0);
        if (
          a.str('mode', 'constant') !== 'constant' ||
          value !== 0 ||
          pads.length !== 8 ||
          pads[0] ||
          pads[1] ||
          pads[4] ||
          pads[5]
        )
          this.fail(`node '${node.name}' (Pad): only zero padding of height and width is supported`);
        return this.zeroPad(node, x, [pads[2]!, pads[3]!, pads[6]!, pads[7]!]);
      }
      case 'Gemm':
        return this.gemm(node, a);
      case 'MatMul':
        return this.matmul(node);
      default:
        return this.fail(
          `node '${node.name}' has op type ${op}, which the importer does not support (supported: ${SUPPORTED})`,
        );
    }
  }

  /** ZeroPadding2D for ONNX-order pads [top, left, bottom, right] (none when all are zero). */
  private zeroPad(
    node: O.INodeProto,
    x: Extract<Val, { kind: 'map' }>,
    pads: readonly number[],
  ): Extract<Val, { kind: 'map' }> {
    const [t, l, b, r] = pads as [number, number, number, number];
    if (pads.some((p) => p < 0)) this.fail(`node '${node.name}' (${node.opType}) has negative pads`);
    if (t === 0 && l === 0 && b === 0 && r === 0) return x;
    const layer = tfl.layers.zeroPadding2d({
      name: this.layerName(node, '.pad'),
      padding: [
        [t, b],
        [l, r],
      ],
    });
    return { ...x, t: this.apply(layer, x.t) };
  }

  private conv(node: O.INodeProto, a: Attrs): Val {
    const x = this.mapIn(node, 0);
    const w = this.constIn(node, 1, 'weight');
    const bias = node.input?.[2] ? this.constIn(node, 2, 'bias') : null;
    if (w.dims.length !== 4)
      this.fail(
        `node '${node.name}' (Conv) has a ${w.dims.length}-D weight; only 2-D convolutions are supported`,
      );
    const [m, cg, kh, kw] = w.dims as [number, number, number, number];
    const cin = x.t.shape[3] as number;
    const group = a.int('group', 1);
    const strides = a.ints('strides', [1, 1]);
    const dil = a.ints('dilations', [1, 1]);
    const pads = this.pads(node, a);
    const depthwise = group > 1 && group === cin && cg === 1 && m % cin === 0;
    if (group !== 1 && !depthwise)
      this.fail(
        `node '${node.name}' (Conv) has ${group} groups over ${cin} channels; only group 1 and depthwise (group = channels) are supported`,
      );
    if (group === 1 && cg !== cin)
      this.fail(`node '${node.name}' (Conv): weight takes ${cg} channels, input has ${cin}`);
    const same =
      strides.every((s) => s === 1) &&
      pads[0] === pads[2] &&
      pads[1] === pads[3] &&
      pads[0] === (dil[0]! * (kh - 1)) / 2 &&
      pads[1] === (dil[1]! * (kw - 1)) / 2;
    const input = same ? x : this.zeroPad(node, x, pads);
    const common = {
      name: this.layerName(node),
      kernelSize: [kh, kw] as [number, number],
      strides: strides as [number, number],
      dilationRate: dil as [number, number],
      padding: same && pads.some((p) => p > 0) ? ('same' as const) : ('valid' as const),
      useBias: bias !== null,
    };
    // ONNX [M, C/g, kh, kw] -> tfjs [kh, kw, C/g, M]; depthwise: output m = c * mult + j both ways.
    const kernel = { data: permute(w.data, w.dims, [2, 3, 1, 0]), shape: [kh, kw, cg, m] };
    const layer = depthwise
      ? tfl.layers.depthwiseConv2d({ ...common, depthMultiplier: m / cin })
      : tfl.layers.conv2d({ ...common, filters: m });
    if (depthwise) kernel.shape = [kh, kw, cin, m / cin];
    const t = this.apply(layer, input.t);
    this.weights.push({ layer, values: bias ? [kernel, { data: bias.data, shape: [m] }] : [kernel] });
    return { kind: 'map', t, layout: 'nchw', nonNeg: false };
  }

  /** [top, left, bottom, right] from `pads` / `auto_pad`. */
  private pads(node: O.INodeProto, a: Attrs): number[] {
    const auto = a.str('auto_pad', 'NOTSET');
    if (auto !== 'NOTSET' && auto !== 'VALID')
      this.fail(
        `node '${node.name}' (${node.opType}) has auto_pad ${auto}; give explicit pads (PyTorch's export does)`,
      );
    return auto === 'VALID' ? [0, 0, 0, 0] : a.ints('pads', [0, 0, 0, 0]);
  }

  private pool(node: O.INodeProto, a: Attrs, op: string): Val {
    const x = this.mapIn(node, 0);
    const k = a.ints('kernel_shape', []);
    const s = a.ints('strides', [1, 1]);
    const pads = this.pads(node, a);
    if (k.length !== 2) this.fail(`node '${node.name}' (${op}) is not a 2-D pool`);
    if (a.ints('dilations', [1, 1]).some((d) => d !== 1)) this.fail(`node '${node.name}' (${op}) is dilated`);
    const padded = pads.some((p) => p > 0);
    if (padded && op === 'MaxPool' && !x.nonNeg)
      this.fail(
        `node '${node.name}' (MaxPool) pads an input that can be negative; only padding after ReLU, ReLU6 or Sigmoid is supported`,
      );
    if (padded && op === 'AveragePool' && a.int('count_include_pad', 0) === 0)
      this.fail(
        `node '${node.name}' (AveragePool) pads without counting the padding (count_include_pad 0); not supported`,
      );
    if (a.int('ceil_mode', 0) === 1) {
      const [h, w] = [x.t.shape[1] as number, x.t.shape[2] as number];
      const size = (n: number, i: number, round: (v: number) => number) =>
        round((n + pads[i]! + pads[i + 2]! - k[i]!) / s[i]!) + 1;
      if (
        size(h, 0, Math.ceil) !== size(h, 0, Math.floor) ||
        size(w, 1, Math.ceil) !== size(w, 1, Math.floor)
      )
        this.fail(
          `node '${node.name}' (${op}) uses ceil_mode where it changes the output size; not supported`,
        );
    }
    const input = this.zeroPad(node, x, pads);
    const cfg = {
      name: this.layerName(node),
      poolSize: k as [number, number],
      strides: s as [number, number],
      padding: 'valid' as const,
    };
    const layer = op === 'MaxPool' ? tfl.layers.maxPooling2d(cfg) : tfl.layers.averagePooling2d(cfg);
    return { ...x, t: this.apply(layer, input.t) };
  }

  private merge(node: O.INodeProto, op: 'Add' | 'Mul'): Val {
    const [p, q] = [this.val(node, 0), this.val(node, 1)];
    if (p.kind === 'const' || q.kind === 'const')
      this.fail(
        `node '${node.name}' (${op}) with a constant operand; only a bias Add right after MatMul is supported`,
      );
    let xs = [p, q];
    // A squeeze-excitation gate: a map times a [N, C, 1, 1] global-pool result, broadcast over H, W.
    if (xs.some((x) => x.kind === 'map') && xs.some((x) => x.kind === 'vec'))
      xs = xs.map((_, i) => this.mapIn(node, i));
    const layer =
      op === 'Add'
        ? tfl.layers.add({ name: this.layerName(node) })
        : tfl.layers.multiply({ name: this.layerName(node) });
    const first = xs[0]!;
    const second = xs[1]!;
    if (
      second.kind !== first.kind ||
      (first.kind === 'map' && second.kind === 'map' && first.layout !== second.layout)
    )
      this.fail(`node '${node.name}' (${op}) mixes tensors of different layouts`);
    const nonNeg = xs.every((x) => x.nonNeg);
    return this.like(
      first,
      this.apply(
        layer,
        xs.map((x) => x.t),
      ),
      nonNeg,
    );
  }

  private flatten(node: O.INodeProto, x: Exclude<Val, { kind: 'const' }>): Val {
    if (x.kind === 'vec') return { ...x, spatial: false };
    const [h, w] = [x.t.shape[1] as number, x.t.shape[2] as number];
    let t = x.t;
    // PyTorch flattens [C, H, W]: bring channels first so that the features keep its order.
    if (x.layout === 'nchw' && h * w > 1)
      t = this.apply(tfl.layers.permute({ name: this.layerName(node, '.nchw'), dims: [3, 1, 2] }), t);
    t = this.apply(tfl.layers.flatten({ name: this.layerName(node) }), t);
    return { kind: 'vec', t, spatial: false, nonNeg: x.nonNeg };
  }

  private vecIn(node: O.INodeProto): Extract<Val, { kind: 'vec' }> {
    const x = this.symIn(node, 0);
    if (x.kind !== 'vec') this.fail(`node '${node.name}' (${node.opType}) reads a 4-D map; flatten it first`);
    return x;
  }

  private dense(
    node: O.INodeProto,
    x: Extract<Val, { kind: 'vec' }>,
    kernel: Float64Array,
    k: number,
    m: number,
    bias: Float64Array | null,
  ): Val {
    if ((x.t.shape[1] as number) !== k)
      this.fail(`node '${node.name}' (${node.opType}) takes ${k} features, its input has ${x.t.shape[1]}`);
    const layer = tfl.layers.dense({ name: this.layerName(node), units: m, useBias: bias !== null });
    const t = this.apply(layer, x.t);
    this.weights.push({
      layer,
      values: [{ data: kernel, shape: [k, m] }, ...(bias ? [{ data: bias, shape: [m] }] : [])],
    });
    return { kind: 'vec', t, spatial: false, nonNeg: false };
  }

  private gemm(node: O.INodeProto, a: Attrs): Val {
    const x = this.vecIn(node);
    const b = this.constIn(node, 1, 'weight');
    if (a.int('transA', 0) !== 0 || b.dims.length !== 2)
      this.fail(`node '${node.name}' (Gemm): only x * W (+ C) with a 2-D constant W is supported`);
    const transB = a.int('transB', 0) === 1;
    const [k, m] = transB ? [b.dims[1]!, b.dims[0]!] : [b.dims[0]!, b.dims[1]!];
    const alpha = a.float('alpha', 1);
    const beta = a.float('beta', 1);
    const kernel = (transB ? permute(b.data, b.dims, [1, 0]) : b.data).map((v) => v * alpha);
    let bias: Float64Array | null = null;
    if (node.input?.[2]) {
      const c = this.constIn(node, 2, 'bias').data;
      if (c.length !== m && c.length !== 1)
        this.fail(`node '${node.name}' (Gemm): bias has ${c.length} values for ${m} outputs`);
      bias = Float64Array.from({ length: m }, (_, i) => beta * c[c.length === 1 ? 0 : i]!);
    }
    return this.dense(node, x, kernel, k, m, bias);
  }

  /** MatMul by a constant; a following Add of a constant [M] that is its only reader becomes the bias. */
  private matmul(node: O.INodeProto): Val {
    const x = this.vecIn(node);
    const b = this.constIn(node, 1, 'weight');
    if (b.dims.length !== 2)
      this.fail(`node '${node.name}' (MatMul): only a 2-D constant right operand is supported`);
    const [k, m] = b.dims as [number, number];
    const out = node.output![0]!;
    const add =
      this.readers.get(out) === 1
        ? this.graph.node?.find((n) => n.opType === 'Add' && n.input?.includes(out))
        : undefined;
    const other = add?.input?.find((i) => i !== out);
    const c = other ? this.vals.get(other) : undefined;
    if (add && c?.kind === 'const' && c.v.data.length === m) {
      const v = this.dense(node, x, b.data, k, m, c.v.data);
      this.fused.set(add.output![0]!, out);
      return v;
    }
    return this.dense(node, x, b.data, k, m, null);
  }
}

/** `data` with dims `dims` transposed by `perm` (row-major). */
function permute(data: Float64Array, dims: readonly number[], perm: readonly number[]): Float64Array {
  const rank = dims.length;
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1]! * dims[i + 1]!;
  const out = new Float64Array(data.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d]! * inStrides[perm[d]!]!;
    out[o] = data[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < outDims[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}
