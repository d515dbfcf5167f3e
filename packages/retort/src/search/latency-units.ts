/**
 * The costly units of a tfjs-layers model for the latency table (latency-table.ts): each unit is
 * one layer, or a conv with the layers that run fused with it, with a key that fixes its cost.
 *
 * Why convs take their neighbours: the fp32 ONNX export writes a batch norm as its own
 * BatchNormalization node, a folded zero padding as the conv's pads and an activation as its own
 * node (export/onnx/ops-*.ts); onnxruntime (all graph optimizations) then folds the batch norm
 * into the conv's weights and fuses the activation into the conv, so in the exported model a conv
 * unit `[ZeroPadding2D] -> Conv2D|DepthwiseConv2D -> [BatchNormalization] -> [Activation|ReLU]`
 * runs as one kernel. Keyed one by one, the batch norm and activation would be timed as kernels
 * that do not run there. The native backend runs the same layers as separate kernels, and a
 * one-unit model runs them the same way, so the grouping costs that runtime nothing. Not mirrored:
 * onnxruntime's NCHWc pass also fuses a residual Add (and the ReLU after it) into the conv that
 * feeds it; they stay units of their own here, a small over-count (memory-bound, about 0.2 ms per
 * block at batch 64 on 28x28x16 maps), because that unit would need a second input.
 *
 * What the unit absorbs follows the exporter's rules: a ZeroPadding2D only when it is the only
 * input of a 'valid' conv (the conv's pads); a batch norm only when the conv has no fused
 * activation and the batch norm is its only consumer (`bnFoldTarget`); then one elementwise
 * activation (not softmax) that is the only consumer. Dropout and the input layer cost nothing at
 * inference and are listed with that reason; a layer class without a dedicated key gets a generic
 * one (class, input shapes and every config entry except names, initializers, regularizers and
 * constraints), which may split layers of equal cost but never merges layers of different cost.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import { cloneLayer } from '../compress/graph.js';
import { bnFoldTarget } from '../export/onnx/ops-norm.js';
import { ChannelSlice } from '../models/shufflenetv2.js';

type Layer = tfl.layers.Layer;

/** One costly unit of a model. */
export interface LayerUnit {
  /** Fixes the unit's cost: two units with the same key run the same kernels on the same shapes. */
  key: string;
  /** Op kind: conv2d, depthwise, dense, batchnorm, activation, maxpool, avgpool, gap, add, ... */
  kind: string;
  /** Input shapes without the batch axis. */
  inputShapes: number[][];
  /** Output shape of the unit's last layer, without the batch axis. */
  outputShape: number[];
  /** The model's layers in this unit, in order (the head's padding first). */
  layers: Layer[];
}

/** A layer that costs nothing at inference, and why. */
export interface ZeroCostLayer {
  layer: string;
  className: string;
  reason: string;
}

export interface Decomposition {
  units: LayerUnit[];
  zeroCost: ZeroCostLayer[];
}

const ZERO_COST: Record<string, string> = {
  InputLayer: 'the model input',
  Dropout: 'identity at inference (an Identity node in ONNX)',
  SpatialDropout1D: 'identity at inference',
  GaussianNoise: 'identity at inference',
  GaussianDropout: 'identity at inference',
  AlphaDropout: 'identity at inference',
};
const CONVS = new Set(['Conv2D', 'DepthwiseConv2D']);
const ACTIVATIONS = new Set(['Activation', 'ReLU']);

const dims = (s: readonly (number | null)[], where: string): number[] =>
  s.map((d) => {
    if (d === null)
      throw new Error(`latency table: layer '${where}' has an unknown dimension in [${s.join(', ')}]`);
    return d;
  });
const shapeStr = (s: readonly number[]) => s.join('x');
const pairStr = (v: unknown, def: number) => {
  const p = v === undefined || v === null ? [def, def] : Array.isArray(v) ? v : [v, v];
  return `${p[0]}x${p[1] ?? p[0]}`;
};

function inputShapesOf(layer: Layer): number[][] {
  const input = layer.input as tfl.SymbolicTensor | tfl.SymbolicTensor[];
  return (Array.isArray(input) ? input : [input]).map((t) => dims(t.shape.slice(1), layer.name));
}

/** The activation a layer applies ('linear' for none); for ReLU layers, the clip value too. */
function activationOf(layer: Layer): string {
  const cfg = layer.getConfig();
  if (layer.getClassName() === 'ReLU') {
    const max = (cfg['maxValue'] ?? null) as number | null;
    return max === null ? 'relu' : `relu-layer-max${max}`;
  }
  return (cfg['activation'] as string | undefined) ?? 'linear';
}

const IGNORED_CONFIG =
  /^(name|trainable|dtype|batchInputShape|inputDType|.*(Initializer|Regularizer|Constraint))$/;

/** JSON with object keys sorted: equal values give equal strings. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** The key of a unit without a conv head: one layer. */
function layerKey(layer: Layer, ins: number[][]): { kind: string; key: string } {
  const cls = layer.getClassName();
  const cfg = layer.getConfig();
  const inStr = ins.map(shapeStr).join('+');
  const pool = () =>
    `k=${pairStr(cfg['poolSize'], 2)} s=${pairStr(cfg['strides'] ?? cfg['poolSize'], 2)} pad=${cfg['padding'] ?? 'valid'}`;
  const simple: Record<string, () => [string, string]> = {
    Dense: () => ['dense', `units=${cfg['units']} bias=${cfg['useBias'] ? 1 : 0} act=${activationOf(layer)}`],
    BatchNormalization: () => ['batchnorm', `axis=${cfg['axis']}`],
    Activation: () => ['activation', `fn=${activationOf(layer)}`],
    ReLU: () => ['activation', `fn=${activationOf(layer)}`],
    MaxPooling2D: () => ['maxpool', pool()],
    AveragePooling2D: () => ['avgpool', pool()],
    GlobalAveragePooling2D: () => ['gap', ''],
    GlobalMaxPooling2D: () => ['gmp', ''],
    Add: () => ['add', ''],
    Multiply: () => ['multiply', ''],
    Concatenate: () => ['concat', `axis=${cfg['axis'] ?? -1}`],
    Flatten: () => ['flatten', ''],
    Reshape: () => ['reshape', `to=${shapeStr(cfg['targetShape'] as number[])}`],
    Permute: () => ['permute', `dims=${(cfg['dims'] as number[]).join(',')}`],
    ZeroPadding2D: () => ['pad', `p=${stableJson(cfg['padding'])}`],
    RetortChannelSlice: () => ['slice', `start=${cfg['start']} size=${cfg['size']}`],
  };
  const entry = simple[cls];
  const [kind, rest] = entry
    ? entry()
    : [
        `layer:${cls}`,
        `cfg=${stableJson(Object.fromEntries(Object.entries(cfg).filter(([k]) => !IGNORED_CONFIG.test(k))))}`,
      ];
  return { kind, key: `${kind} in=${inStr}${rest ? ` ${rest}` : ''}` };
}

/**
 * Splits `model` into its costly units (model order) and the layers that cost nothing. Throws,
 * naming the layer, for a layer called more than once or a shape with an unknown dimension.
 */
export function decompose(model: tfl.LayersModel): Decomposition {
  const inModel = new Set(model.layers.map((l) => l.name));
  const outputs = new Set(model.outputs.map((o) => o.sourceLayer.name));
  const consumers = (l: Layer) =>
    l.outboundNodes.map((n) => n.outboundLayer).filter((c) => inModel.has(c.name));
  const onlyConsumer = (l: Layer): Layer | undefined => {
    const c = consumers(l);
    return c.length === 1 && !outputs.has(l.name) ? c[0] : undefined;
  };
  // Conv units first: their padding comes before them in model order.
  const unitOf = new Map<string, Layer[]>();
  const absorbed = new Set<string>();
  for (const layer of model.layers) {
    if (layer.inboundNodes.length !== 1)
      throw new Error(
        `latency table: layer '${layer.name}' of '${model.name}' is called ${layer.inboundNodes.length} times (shared layers are not supported)`,
      );
    if (!CONVS.has(layer.getClassName())) continue;
    const parts: Layer[] = [layer];
    const src = layer.inboundNodes[0]!.inboundLayers[0]!;
    if (
      src.getClassName() === 'ZeroPadding2D' &&
      (layer.getConfig()['padding'] ?? 'valid') === 'valid' &&
      onlyConsumer(src) === layer
    )
      parts.unshift(src);
    let last = layer;
    const next = onlyConsumer(layer);
    if (next && bnFoldTarget(next) === layer) {
      parts.push(next);
      last = next;
    }
    const act = onlyConsumer(last);
    if (act && ACTIVATIONS.has(act.getClassName()) && activationOf(act) !== 'softmax') parts.push(act);
    unitOf.set(layer.name, parts);
    for (const p of parts) if (p !== layer) absorbed.add(p.name);
  }

  const units: LayerUnit[] = [];
  const zeroCost: ZeroCostLayer[] = [];
  for (const layer of model.layers) {
    if (absorbed.has(layer.name)) continue;
    const cls = layer.getClassName();
    const reason = ZERO_COST[cls];
    if (reason !== undefined) {
      zeroCost.push({ layer: layer.name, className: cls, reason });
      continue;
    }
    const parts = unitOf.get(layer.name);
    const ins = inputShapesOf(parts?.[0] ?? layer);
    const last = parts?.at(-1) ?? layer;
    const out = last.output as tfl.SymbolicTensor | tfl.SymbolicTensor[];
    const outputShape = dims((Array.isArray(out) ? out[0]! : out).shape.slice(1), last.name);
    if (parts === undefined) {
      units.push({ ...layerKey(layer, ins), inputShapes: ins, outputShape, layers: [layer] });
      continue;
    }
    const cfg = layer.getConfig();
    const depthwise = cls === 'DepthwiseConv2D';
    const pad =
      parts[0]!.getClassName() === 'ZeroPadding2D' ? stableJson(parts[0]!.getConfig()['padding']) : '';
    const bn = parts.some((p) => p.getClassName() === 'BatchNormalization');
    const post = parts.at(-1)!;
    const kind = depthwise ? 'depthwise' : 'conv2d';
    const width = depthwise ? `mult=${cfg['depthMultiplier'] ?? 1}` : `f=${cfg['filters']}`;
    const key = [
      `${kind} in=${shapeStr(ins[0]!)}`,
      `k=${pairStr(cfg['kernelSize'], 1)} s=${pairStr(cfg['strides'], 1)} d=${pairStr(cfg['dilationRate'], 1)}`,
      `pad=${cfg['padding'] ?? 'valid'}${pad ? `+${pad}` : ''} ${width} bias=${cfg['useBias'] ? 1 : 0}`,
      `act=${activationOf(layer)} bn=${bn ? 1 : 0} post=${ACTIVATIONS.has(post.getClassName()) ? activationOf(post) : 'none'}`,
    ].join(' ');
    units.push({ key, kind, inputShapes: ins, outputShape, layers: parts });
  }
  return { units, zeroCost };
}

/**
 * A model of one unit: input(s) of the unit's input shapes -> fresh copies of its layers (same
 * classes and configs, fresh weights). One model input, because the ONNX export takes one: a merge
 * of equal shapes reads that input several times; a channel concat of unequal widths reads channel
 * slices of one input (their copies are timed with it: a small overestimate).
 */
export function unitModel(unit: LayerUnit): tfl.LayersModel {
  const ins = unit.inputShapes;
  const same = ins.every((s) => shapeStr(s) === shapeStr(ins[0]!));
  let args: tfl.SymbolicTensor | tfl.SymbolicTensor[];
  let input: tfl.SymbolicTensor;
  if (same) {
    input = tfl.input({ shape: ins[0]!, name: 'input' });
    args = ins.length === 1 ? input : ins.map(() => input);
  } else if (
    unit.kind === 'concat' &&
    ins.every((s) => s.length === 3 && shapeStr(s.slice(0, -1)) === shapeStr(ins[0]!.slice(0, -1)))
  ) {
    const widths = ins.map((s) => s.at(-1)!);
    input = tfl.input({ shape: [...ins[0]!.slice(0, -1), widths.reduce((a, b) => a + b, 0)], name: 'input' });
    let start = 0;
    args = widths.map((size, i) => {
      const part = new ChannelSlice({ name: `part${i}`, start, size }).apply(input) as tfl.SymbolicTensor;
      start += size;
      return part;
    });
  } else {
    throw new Error(
      `latency table: unit '${unit.key}' (layer '${unit.layers[0]!.name}') merges unequal shapes; only channel concatenation of those is supported`,
    );
  }
  let y = args;
  unit.layers.forEach((l, i) => {
    y = cloneLayer(l, { name: `unit${i}` }).apply(y) as tfl.SymbolicTensor;
  });
  return tfl.model({ inputs: input, outputs: y as tfl.SymbolicTensor, name: 'unit' });
}
