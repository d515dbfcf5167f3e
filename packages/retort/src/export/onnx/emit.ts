/**
 * The contract between the ONNX export's walk over the layers (walk.ts) and the op emitters
 * (ops-*.ts): what an emitter gets for one layer, what it declares about the static int8 export,
 * and the facts about the whole graph both read.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { DynamicQuantizer, DynamicQuantOptions } from './dynamic.js';
import type { ActQuant, GraphBuilder, Layout, Value } from './graph.js';

type Layer = tfl.layers.Layer;

/** Facts about the model's graph that emitters and the int8 pass read. */
export interface GraphFacts {
  /** Layers of the model that read `layer`'s output. */
  consumers(layer: Layer): Layer[];
  /** Whether `layer`'s output is a model output. */
  isOutput(layer: Layer): boolean;
  /** Int8 exports (static or dynamic): conv name -> the batch norm folded into it. */
  readonly bnOf: ReadonlyMap<string, Layer>;
  /** Int8 exports: the batch norms folded into their conv (they emit nothing). */
  readonly foldedBns: ReadonlySet<string>;
}

/**
 * Where the static int8 export puts the Q -> DQ pair after a layer (int8.ts applies it):
 *  - 'own': the layer's calibrated range on its output, unless only ReLUs read it (they carry it);
 *  - 'inherit': its input's parameters, so onnxruntime runs the op on uint8 (it drops
 *    DQ -> op -> Q only with equal parameters);
 *  - 'inner': its own range on an inner value the emitter marks (`quantPoint`); the output
 *    inherits that value's parameters;
 *  - 'pass': none, the layer folds into its consumer and passes its input on, quantization included;
 *  - 'none': none, the output stays float or another layer quantizes it.
 */
export type Int8Placement = 'own' | 'inherit' | 'inner' | 'pass' | 'none';

/** The dynamic int8 export (dynamic.ts): its quantizer and options. */
export interface DynamicPass {
  readonly dz: DynamicQuantizer;
  readonly opts: DynamicQuantOptions;
}

/** What the static int8 pass (int8.ts) does around the walk; absent in fp32 and dynamic exports. */
export interface Int8Hooks {
  /** The model input's value as the graph reads it. */
  input(v: Value, inputLayer: Layer): Value;
  /** A conv's or Dense's weight (and bias) initializers, int8 when `x` is quantized. */
  weights(
    base: string,
    x: Value,
    data: Float32Array,
    dims: number[],
    axis: number,
    bias: Float32Array | undefined,
  ): string[];
  /** Q -> DQ of `v` with `layer`'s calibrated range (`v` itself without one). */
  own(layer: Layer, v: Value, base: string): Value;
  /** The layer's emitted `result` with the pair its placement asks for. */
  after(layer: Layer, result: Value, x: Value, inner: ActQuant | undefined): Value;
}

/** One layer as its emitter sees it. */
export interface EmitContext {
  readonly g: GraphBuilder;
  readonly layer: Layer;
  readonly cfg: Record<string, unknown>;
  /** The values the layer reads, in inbound order; `x` is the first. */
  readonly ins: readonly Value[];
  readonly x: Value;
  /** The layer's name, which is also the name of its output value. */
  readonly out: string;
  /** tfjs output shape without the batch axis. */
  readonly outShape: number[];
  readonly facts: GraphFacts;
  /** `v`'s name in `layout`, through a Transpose when it is a 4-D map in the other layout. */
  readonly to: (v: Value, layout: Layout) => string;
  /**
   * Initializers `${base}.W` (and `${base}.B` with a bias) for a kernel of `dims` whose output
   * channels lie on `axis`: int8 behind DequantizeLinear in the static int8 export when `x` is
   * quantized, float otherwise.
   */
  readonly weights: (
    base: string,
    data: Float32Array,
    dims: number[],
    axis: number,
    bias: Float32Array | undefined,
  ) => string[];
  /** Static int8 ('inner' placement): this layer's own Q -> DQ on `v`; `v` itself otherwise. */
  readonly quantPoint: (v: Value, base: string) => Value;
  /** Set in the dynamic int8 export. */
  readonly dynamic: DynamicPass | undefined;
}

/** How one layer class is exported. */
export interface OpEntry {
  /** Writes the layer's nodes and initializers; returns its output value. */
  emit(ctx: EmitContext): Value;
  /** Its static int8 placement (see Int8Placement), fixed or read off the graph. */
  int8: Int8Placement | ((layer: Layer, facts: GraphFacts) => Int8Placement);
}

/** Op entries by tfjs layer class name. */
export type OpTable = Readonly<Record<string, OpEntry>>;
