/**
 * The static int8 QDQ pass of the ONNX export (`exportOnnx(model, { quant })`): batch norm folded
 * into the preceding conv (walk.ts, ops-conv.ts), weights and biases quantized (quant.ts; the weight
 * range is the target's, target.ts), and a Q -> DQ pair on the input and after every layer, placed
 * where onnxruntime 1.30's QDQ fusions want it, so that it runs integer kernels from the stem's
 * output to the logits (Fashion-MNIST ResNet-8 at batch 64: int8/fp32 latency 0.75 -> 0.44,
 * measured interleaved).
 *
 * Where the pairs go is one description: each op entry declares its placement (emit.ts
 * Int8Placement, next to its emitter in ops-*.ts) and `int8Placement` adds the rules that look at
 * the graph; the export (Int8Pass) and `int8QuantPoints` both read it. Exceptions to a pair with
 * the layer's own range:
 *  - the stem stays float: an input read only by convs is not quantized and those convs keep
 *    float weights (as does any conv or Dense whose input carries no quantization), because
 *    onnxruntime's int8 conv over so few input channels is slow (ResNet-8's stem on 28x28x1 at
 *    batch 64: 2.5 ms int8 vs 0.4 ms fp32); the stem's output is quantized as usual;
 *  - no pair before a ReLU: Conv/Add -> Relu -> Q (zero point 0) is fused by onnxruntime into
 *    QLinearConv/QLinearAdd; a pair before the ReLU would leave a float DQ -> Q requantization;
 *  - MaxPool, Flatten, Reshape, Permute, Dropout, channel slices and unfused Pad reuse their
 *    input's parameters, so onnxruntime runs them on uint8 (it drops DQ -> op -> Q only with
 *    equal parameters);
 *  - GlobalAveragePool gets its pair before its Flatten (DQ -> GlobalAveragePool -> Q becomes
 *    QLinearGlobalAveragePool);
 *  - a linear Dense that is a model output keeps float logits (QGemm with float output).
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { GraphFacts, Int8Hooks, Int8Placement } from './emit.js';
import { type ActQuant, floatWeights, type GraphBuilder, type Value } from './graph.js';
import { opFor } from './ops.js';
import { actQuant, Quantizer, type QuantSpec, type WeightGranularity } from './quant.js';
import { graphFacts } from './walk.js';

type Layer = tfl.layers.Layer;

/** A plain ReLU (onnxruntime removes Relu -> Q with zero point 0 and fuses the producer). */
function isRelu(layer: Layer): boolean {
  const cfg = layer.getConfig();
  if (layer.getClassName() === 'Activation') return cfg['activation'] === 'relu';
  return layer.getClassName() === 'ReLU' && (cfg['maxValue'] ?? null) === null;
}

/**
 * Where the static int8 export puts `layer`'s pair: its op's declared placement, except that a
 * layer read only by ReLUs (and not a model output) leaves its own pair to them: the ReLU(s)
 * quantize it (Relu -> Q is fused into this layer's op).
 */
export function int8Placement(layer: Layer, facts: GraphFacts): Int8Placement {
  const declared = opFor(layer).int8;
  const p = typeof declared === 'function' ? declared(layer, facts) : declared;
  const consumers = facts.consumers(layer);
  if (p === 'own' && consumers.length > 0 && !facts.isOutput(layer) && consumers.every(isRelu)) return 'none';
  return p;
}

/** Whether the input stays float: read only by convs (see the header). */
function floatStem(inputLayer: Layer, facts: GraphFacts): boolean {
  const stem = facts.consumers(inputLayer);
  return stem.length > 0 && stem.every((l) => l.getClassName() === 'Conv2D');
}

/** Writes the static int8 QDQ nodes and quantized initializers into one graph, as placed above. */
export class Int8Pass implements Int8Hooks {
  private readonly qz: Quantizer;

  constructor(
    private readonly g: GraphBuilder,
    private readonly quant: QuantSpec,
    weights: WeightGranularity,
    /** Largest |q| of the weights (the target's, target.ts). */
    qmax: number,
    /** The model's facts with batch norms folded (graphFacts(model, true)). */
    private readonly facts: GraphFacts,
  ) {
    this.qz = new Quantizer(g, weights, qmax);
  }

  /** Q -> DQ with a calibrated range (`v` itself without one). */
  private qdq(v: Value, range: readonly [number, number] | undefined, base: string): Value {
    return range !== undefined ? this.qz.qdq(v, actQuant(range), base) : v;
  }

  input(v: Value, inputLayer: Layer): Value {
    return floatStem(inputLayer, this.facts) ? v : this.qdq(v, this.quant.input, 'input');
  }

  weights(
    base: string,
    x: Value,
    data: Float32Array,
    dims: number[],
    axis: number,
    bias: Float32Array | undefined,
  ): string[] {
    if (!x.q) return floatWeights(this.g, base, data, dims, bias);
    const w = this.qz.weight(`${base}.W`, data, dims, axis);
    return bias ? [w.name, this.qz.bias(`${base}.B`, bias, x.q.scale, w.scales)] : [w.name];
  }

  own(layer: Layer, v: Value, base: string): Value {
    return this.qdq(v, this.quant.ranges.get(layer.name), base);
  }

  after(layer: Layer, result: Value, x: Value, inner: ActQuant | undefined): Value {
    const placement = int8Placement(layer, this.facts);
    if (placement === 'pass') return result;
    const plain: Value = { ...result };
    delete plain.q;
    const out = layer.name;
    if (placement === 'own') return this.own(layer, plain, out);
    const same = placement === 'inherit' ? x.q : placement === 'inner' ? inner : undefined;
    return same ? this.qz.qdq(plain, same, out) : plain;
  }
}

/** Where the static int8 export quantizes activations with ranges of their own (see int8QuantPoints). */
export interface Int8QuantPoints {
  /** Whether it reads `QuantSpec.input` (false when only convs read the input: the float stem). */
  input: boolean;
  /** The layers whose `QuantSpec.ranges` entry it reads, in model order. */
  layers: string[];
}

/**
 * The activations `exportOnnx(model, { quant })` puts a Q -> DQ pair on with a range of its own.
 * A layer's range there is that of its output as the int8 graph computes it: a folded BN's is its
 * conv's output, a ReLU's that of the Conv/Add + Relu onnxruntime fuses, a global average pool's
 * the pooled value. Every other pair reuses its input's parameters (MaxPool, Flatten, Reshape,
 * Permute, Dropout, unfused Pad, channel slices), so a value already on that grid stays on it.
 * Read from the same placement as the export (`int8Placement`; test/compress/act-qat.test.ts checks
 * that a spec holding only these ranges exports the same bytes as a full one, and that each is
 * read); activation QAT (compress/quantize/act-qat.ts) fake-quantizes exactly these tensors.
 */
export function int8QuantPoints(model: tfl.LayersModel): Int8QuantPoints {
  if (model.inputs.length !== 1) throw new Error('onnx export: models with one input only');
  const facts = graphFacts(model, true);
  const layers = model.layers
    .filter((l) => l.getClassName() !== 'InputLayer')
    .filter((l) => {
      const p = int8Placement(l, facts);
      return p === 'own' || p === 'inner';
    })
    .map((l) => l.name);
  return { input: !floatStem(model.inputLayers[0]!, facts), layers };
}
