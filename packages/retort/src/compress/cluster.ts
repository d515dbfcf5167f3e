/**
 * Weight sharing by k-means (Han, Mao and Dally, "Deep Compression", ICLR 2016): a layer's weights
 * are replaced by the nearest of k shared values (centroids), stored as ceil(log2 k)-bit indices plus
 * a k-entry codebook. Centroids start from k-means++ (Arthur and Vassilvitskii, SODA 2007; seeded)
 * and are refined by Lloyd iterations. Fine-tuning keeps the assignment and trains the centroids:
 * a centroid's gradient is the sum of its weights' gradients (centroidGradients).
 */

export interface Clustering {
  centroids: Float32Array;
  /** Cluster index of every weight. */
  indices: Uint16Array;
  /** Sum of squared distances of the weights to their centroids. */
  inertia: number;
}

function mulberry(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k-means++ initial centroids of 1-D values. */
export function kmeansPlusPlus(x: Float32Array, k: number, seed: number): Float32Array {
  const rand = mulberry(seed);
  const c = new Float32Array(k);
  c[0] = x[Math.floor(rand() * x.length)]!;
  const d2 = Float64Array.from(x, (v) => (v - c[0]!) ** 2);
  for (let j = 1; j < k; j++) {
    const total = d2.reduce((a, b) => a + b, 0);
    let pick = x.length - 1;
    if (total > 0) {
      let u = rand() * total;
      for (let i = 0; i < x.length; i++) {
        u -= d2[i]!;
        if (u <= 0) {
          pick = i;
          break;
        }
      }
    }
    c[j] = x[pick]!;
    for (let i = 0; i < x.length; i++) d2[i] = Math.min(d2[i]!, (x[i]! - c[j]!) ** 2);
  }
  return c;
}

function assign(x: Float32Array, c: Float32Array, idx: Uint16Array): number {
  let inertia = 0;
  for (let i = 0; i < x.length; i++) {
    let best = 0;
    let bd = Number.POSITIVE_INFINITY;
    for (let j = 0; j < c.length; j++) {
      const d = (x[i]! - c[j]!) ** 2;
      if (d < bd) {
        bd = d;
        best = j;
      }
    }
    idx[i] = best;
    inertia += bd;
  }
  return inertia;
}

/** k-means of 1-D values (k <= 65536), `iterations` Lloyd steps at most. */
export function kmeans(
  x: Float32Array,
  k: number,
  opts: { seed?: number; iterations?: number; init?: Float32Array } = {},
): Clustering {
  if (!(Number.isInteger(k) && k >= 1 && k <= 65536))
    throw new Error(`cluster: k must be an integer in [1, 65536], got ${k}`);
  if (x.length < k) throw new Error(`cluster: ${x.length} weights cannot form ${k} clusters`);
  const c = opts.init ? Float32Array.from(opts.init) : kmeansPlusPlus(x, k, opts.seed ?? 0);
  const idx = new Uint16Array(x.length);
  let inertia = assign(x, c, idx);
  for (let it = 0; it < (opts.iterations ?? 50); it++) {
    const sum = new Float64Array(k);
    const count = new Float64Array(k);
    for (let i = 0; i < x.length; i++) {
      sum[idx[i]!]! += x[i]!;
      count[idx[i]!]! += 1;
    }
    for (let j = 0; j < k; j++) if (count[j]! > 0) c[j] = sum[j]! / count[j]!;
    const next = assign(x, c, idx);
    if (next >= inertia - 1e-12 * Math.max(1, inertia)) {
      inertia = next;
      break;
    }
    inertia = next;
  }
  return { centroids: c, indices: idx, inertia };
}

/** The shared weights: centroid of every index. */
export function decode(c: Clustering): Float32Array {
  return Float32Array.from(c.indices, (i) => c.centroids[i]!);
}

/** Gradient of each centroid: the sum of the gradients of the weights that share it. */
export function centroidGradients(grad: ArrayLike<number>, c: Clustering): Float32Array {
  const g = new Float32Array(c.centroids.length);
  for (let i = 0; i < c.indices.length; i++) g[c.indices[i]!]! += grad[i]!;
  return g;
}
