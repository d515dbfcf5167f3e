/**
 * HashedNets layers: Chen, Wilson, Tyree, Weinberger & Chen, "Compressing Neural Networks with the
 * Hashing Trick", ICML 2015. A layer's kernel is a virtual tensor V[p] = s(p) w[h(p)] over its flat
 * row-major positions p (p = i out + j for a Dense kernel [in, out]; the same order over a conv's
 * [kh, kw, Cin, Cout]). w holds the K trainable buckets, h hashes (layer seed, p) into [0, K), and
 * s(p) in {-1, +1} is the paper's second, independent sign hash: with it the weights that share a
 * bucket enter with random signs, so collisions cancel in expectation instead of adding a bias.
 * Only the buckets (and the bias, which stays dense: few weights) are layer weights; the index and
 * sign tables follow from (seed, kernel shape, K), are rebuilt on load and are never stored.
 * The forward gathers V from w, so autograd's gather gradient is the paper's bucket gradient,
 * dL/dw_k = sum over p with h(p) = k of s(p) dL/dV[p].
 *
 * The hash is XXH32 (Collet's xxHash, 32-bit) of p as one little-endian 4-byte word: integer
 * arithmetic only, so the tables are the same on every machine and in any other XXH32 port.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;
/** XORed into a layer's seed for the sign hash, so that s is independent of h. */
const SIGN_SALT = 0x9e3779b9;

/** XXH32 of the uint32 `n` (4 bytes, little endian) with `seed`: the reference xxHash result. */
export function xxh32(seed: number, n: number): number {
  let h = ((seed >>> 0) + P5 + 4) >>> 0;
  h = (h + Math.imul(n >>> 0, P3)) >>> 0;
  h = Math.imul((h << 17) | (h >>> 15), P4);
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket h(p) in [0, K) and sign s(p) of each of the `n` kernel positions of a layer. */
export interface HashTables {
  index: Int32Array;
  sign: Float32Array;
}

/** Tables of a kernel of `n` weights over `buckets` buckets; `seed` is the layer's (uint32). */
export function hashTables(n: number, buckets: number, seed: number): HashTables {
  if (!(Number.isInteger(buckets) && buckets >= 1))
    throw new Error(`hash: buckets must be a positive integer, got ${buckets}`);
  if (!(Number.isInteger(n) && n >= 0 && n < 2 ** 32))
    throw new Error(`hash: kernel size must be an integer in [0, 2^32), got ${n}`);
  const index = new Int32Array(n);
  const sign = new Float32Array(n);
  const signSeed = (seed ^ SIGN_SALT) >>> 0;
  // h mod K: the bias toward small buckets is at most K / 2^32, negligible next to hash collisions.
  for (let p = 0; p < n; p++) {
    index[p] = xxh32(seed, p) % buckets;
    sign[p] = (xxh32(signSeed, p) & 1) === 0 ? 1 : -1;
  }
  return { index, sign };
}

/** V[p] = s(p) w[h(p)]: the virtual kernel, flat in row-major order. */
export function virtualKernel(buckets: Float32Array, t: HashTables): Float32Array {
  return Float32Array.from(t.index, (k, p) => t.sign[p]! * buckets[k]!);
}

/**
 * The buckets whose virtual kernel is closest to `kernel` (flat, row-major) in least squares: the
 * projection onto the hashed subspace. As s(p)^2 = 1, bucket k is the mean of s(p) W[p] over the
 * positions it holds; an empty bucket (no position hashes to it) is 0, and `empty` counts them.
 */
export function projectBuckets(
  kernel: Float32Array,
  t: HashTables,
  buckets: number,
): { buckets: Float32Array; empty: number } {
  if (kernel.length !== t.index.length)
    throw new Error(`hash: kernel has ${kernel.length} weights, the tables ${t.index.length}`);
  const sum = new Float64Array(buckets);
  const count = new Uint32Array(buckets);
  for (let p = 0; p < kernel.length; p++) {
    const k = t.index[p]!;
    sum[k]! += t.sign[p]! * kernel[p]!;
    count[k]! += 1;
  }
  let empty = 0;
  const w = Float32Array.from(sum, (s, k) => {
    if (count[k] === 0) empty++;
    return count[k] === 0 ? 0 : s / count[k]!;
  });
  return { buckets: w, empty };
}

type LayerArgs = NonNullable<ConstructorParameters<typeof tfl.layers.Layer>[0]>;
type ActivationName = Parameters<typeof tfl.layers.activation>[0]['activation'];

/** What both hashed layers take (and serialize). */
export interface HashedArgs extends LayerArgs {
  /** K, the number of trainable buckets. */
  buckets: number;
  /** The layer's hash seed (uint32); the sign hash uses a salted copy. */
  seed: number;
  /** As the replaced layer's (a tfjs-layers activation name); default 'linear'. */
  activation?: string;
  /** Default true. */
  useBias?: boolean;
}

/** The shared part of HashedDense and HashedConv2D: buckets, tables, bias and activation. */
export abstract class HashedLayer extends tfl.layers.Layer {
  readonly buckets: number;
  readonly seed: number;
  readonly activation: string;
  readonly useBias: boolean;
  /** The kernel shape, known once built. */
  kernelShape: number[] = [];
  private w: tfl.LayerVariable | null = null;
  private bias: tfl.LayerVariable | null = null;
  private tables: { index: tf.Tensor1D; sign: tf.Tensor1D } | null = null;
  private readonly act: { apply(x: tf.Tensor): tf.Tensor } | null;

  constructor(args: HashedArgs) {
    const { buckets, seed, activation, useBias, ...rest } = args;
    super(rest);
    if (!(Number.isInteger(buckets) && buckets >= 1))
      throw new Error(`hashed layer '${this.name}': buckets must be a positive integer, got ${buckets}`);
    if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32))
      throw new Error(`hashed layer '${this.name}': seed must be a uint32, got ${seed}`);
    this.buckets = buckets;
    this.seed = seed;
    this.activation = activation ?? 'linear';
    this.useBias = useBias ?? true;
    this.act =
      this.activation === 'linear'
        ? null
        : tfl.layers.activation({ activation: this.activation as ActivationName }).activation;
  }

  /** The kernel shape for `inputShape` (with the batch axis). */
  protected abstract shapeOf(inputShape: number[]): number[];
  /** x * V: matMul or conv. */
  protected abstract op(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor;

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as number[];
    this.kernelShape = this.shapeOf(s);
    const n = this.kernelShape.reduce((a, b) => a * b, 1);
    const out = this.kernelShape.at(-1)!;
    // PyTorch's default U(+-1/sqrt(fan_in)) of the virtual weights, as the zoo's layers: only a
    // layer built from scratch keeps it; hashModel and loading overwrite the buckets.
    const b = 1 / Math.sqrt(n / out);
    const init = tfl.initializers.randomUniform({ minval: -b, maxval: b });
    this.w = this.addWeight('buckets', [this.buckets], 'float32', init, undefined, true);
    if (this.useBias) this.bias = this.addWeight('bias', [out], 'float32', init, undefined, true);
    const t = hashTables(n, this.buckets, this.seed);
    this.tables = {
      index: tf.keep(tf.tensor1d(t.index, 'int32')),
      sign: tf.keep(tf.tensor1d(t.sign, 'float32')),
    };
    this.built = true;
  }

  /** The virtual kernel V (a new tensor; the caller disposes it). */
  virtual(): tf.Tensor {
    if (this.w === null || this.tables === null)
      throw new Error(`hashed layer '${this.name}' is not built yet`);
    const { index, sign } = this.tables;
    const w = this.w.read();
    return tf.tidy(() => tf.reshape(tf.mul(tf.gather(w, index), sign), this.kernelShape));
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    return tf.tidy(() => {
      this.invokeCallHook(inputs, kwargs);
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      let y = this.op(x, this.virtual());
      if (this.bias !== null) y = tf.add(y, this.bias.read());
      return this.act === null ? y : this.act.apply(y);
    });
  }

  override dispose(): ReturnType<tfl.layers.Layer['dispose']> {
    const r = super.dispose();
    if (r.refCountAfterDispose === 0) this.disposeOwnTensors();
    return r;
  }

  /**
   * Frees the hash tables, which are the layer's own tensors, not weights. For a layer that was
   * built but whose first apply failed: tfjs then never counted it, so `dispose` refuses it and
   * whoever frees its weights one by one calls this too (compress/graph.ts).
   */
  disposeOwnTensors(): void {
    if (this.tables === null) return;
    tf.dispose([this.tables.index, this.tables.sign]);
    this.tables = null;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      buckets: this.buckets,
      seed: this.seed,
      activation: this.activation,
      useBias: this.useBias,
    };
  }
}

/** A Dense layer with a hashed kernel: [..., in] -> [..., units]. */
export class HashedDense extends HashedLayer {
  static readonly className = 'RetortHashedDense';
  readonly units: number;

  constructor(args: HashedArgs & { units: number }) {
    const { units, ...rest } = args;
    super(rest);
    this.units = units;
  }

  protected shapeOf(inputShape: number[]): number[] {
    return [inputShape.at(-1)!, this.units];
  }

  protected op(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor {
    if (x.rank === 2) return tf.matMul(x as tf.Tensor2D, kernel as tf.Tensor2D);
    const lead = x.shape.slice(0, -1);
    const y = tf.matMul(tf.reshape(x, [-1, x.shape.at(-1)!]), kernel as tf.Tensor2D);
    return tf.reshape(y, [...lead, this.units]);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [...s.slice(0, -1), this.units];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), units: this.units };
  }
}
tf.serialization.registerClass(HashedDense);

/** The geometry of a hashed NHWC conv (a tfjs Conv2D's, channelsLast). */
export interface HashedConvArgs extends HashedArgs {
  filters: number;
  kernelSize: [number, number];
  strides?: [number, number];
  padding?: 'valid' | 'same';
  dilationRate?: [number, number];
}

/** A Conv2D with a hashed [kh, kw, Cin, filters] kernel: [N, H, W, Cin] -> [N, H', W', filters]. */
export class HashedConv2D extends HashedLayer {
  static readonly className = 'RetortHashedConv2D';
  readonly filters: number;
  readonly kernelSize: [number, number];
  readonly strides: [number, number];
  readonly padding: 'valid' | 'same';
  readonly dilationRate: [number, number];

  constructor(args: HashedConvArgs) {
    const { filters, kernelSize, strides, padding, dilationRate, ...rest } = args;
    super(rest);
    this.filters = filters;
    this.kernelSize = kernelSize;
    this.strides = strides ?? [1, 1];
    this.padding = padding ?? 'valid';
    this.dilationRate = dilationRate ?? [1, 1];
  }

  protected shapeOf(inputShape: number[]): number[] {
    return [...this.kernelSize, inputShape.at(-1)!, this.filters];
  }

  protected op(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor {
    return tf.conv2d(
      x as tf.Tensor4D,
      kernel as tf.Tensor4D,
      this.strides,
      this.padding,
      'NHWC',
      this.dilationRate,
    );
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    const out = (len: number | null, i: 0 | 1) => {
      if (len === null) return null;
      const k = (this.kernelSize[i] - 1) * this.dilationRate[i] + 1;
      return this.padding === 'same'
        ? Math.ceil(len / this.strides[i])
        : Math.ceil((len - k + 1) / this.strides[i]);
    };
    return [s[0] ?? null, out(s[1] ?? null, 0), out(s[2] ?? null, 1), this.filters];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      filters: this.filters,
      kernelSize: this.kernelSize,
      strides: this.strides,
      padding: this.padding,
      dilationRate: this.dilationRate,
    };
  }
}
tf.serialization.registerClass(HashedConv2D);
