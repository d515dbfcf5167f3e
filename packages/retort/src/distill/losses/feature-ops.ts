/**
 * Small differentiable building blocks shared by the feature- and relation-based losses, each
 * matching the PyTorch function its reference implementations use.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * F.normalize(x, dim=-1): x / max(||x||_2, eps) along the last axis. Written as
 * sqrt(max(sum x^2, eps^2)) so that an all-zero row has a zero gradient through its norm, as in
 * PyTorch, instead of tfjs's 0 * inf = NaN from sqrt at 0.
 */
export function l2Normalize(x: tf.Tensor, eps = 1e-12): tf.Tensor {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.maximum(tf.sum(tf.square(x), -1, true), eps * eps))));
}

/** [size_out, size_in] matrix of F.adaptive_avg_pool over one axis (PyTorch's window rule). */
function adaptiveMatrix(inSize: number, outSize: number): tf.Tensor2D {
  const m = new Float32Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    for (let j = start; j < end; j++) m[i * inSize + j] = 1 / (end - start);
  }
  return tf.tensor2d(m, [outSize, inSize]);
}

/** F.adaptive_avg_pool2d on an NHWC map: [N, H, W, C] -> [N, h, w, C], any sizes. */
export function adaptiveAvgPool(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  const [n, H, W, c] = x.shape;
  if (H === h && W === w) return x;
  return tf.tidy(() => {
    // Pool H: [N, H, W*C] contracted with [h, H]; then W the same way on [N*h, W, C].
    const ah = adaptiveMatrix(H, h);
    const aw = adaptiveMatrix(W, w);
    const byH = tf.matMul(tf.broadcastTo(ah, [n, h, H]), tf.reshape(x, [n, H, W * c])); // [N, h, W*C]
    const byW = tf.matMul(tf.broadcastTo(aw, [n * h, w, W]), tf.reshape(byH, [n * h, W, c])); // [N*h, w, C]
    return tf.reshape(byW, [n, h, w, c]);
  });
}

/** RepDistiller's rule for maps of different sizes: the larger is pooled to the smaller's size. */
export function matchSpatial(s: tf.Tensor4D, t: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const [, hs, ws] = s.shape;
  const [, ht, wt] = t.shape;
  if (hs > ht) return [adaptiveAvgPool(s, ht, wt), t];
  if (hs < ht) return [s, adaptiveAvgPool(t, hs, ws)];
  return [s, t];
}

/** Rows of x flattened: [N, ...] -> [N, prod(rest)]. */
export function flattenRows(x: tf.Tensor): tf.Tensor2D {
  return tf.reshape(x, [x.shape[0]!, -1]) as tf.Tensor2D;
}

/**
 * F.smooth_l1_loss(a, b) with beta 1, mean reduction: with m = min(|a - b|, 1) the per-element
 * value 0.5 m^2 + (|a - b| - m) is 0.5 d^2 below 1 and d - 0.5 above (no comparison op on the
 * tape, which tfjs cannot differentiate).
 */
export function smoothL1(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const d = tf.abs(tf.sub(a, b));
    const m = tf.minimum(d, 1);
    return tf.mean(tf.add(tf.mul(0.5, tf.square(m)), tf.sub(d, m))) as tf.Scalar;
  });
}

/** Throws unless every map is [N, H, W, C] with the batch size of the first. */
export function checkMaps(where: string, maps: readonly tf.Tensor[]): void {
  const n = maps[0]?.shape[0];
  for (const m of maps) {
    if (m.rank !== 4 || m.shape[0] !== n)
      throw new Error(
        `${where}: expected feature maps [N, H, W, C] with one batch size, got ${maps.map((x) => `[${x.shape.join(', ')}]`).join(', ')}`,
      );
  }
}

/** Throws unless student and teacher features have the same batch size (N >= minN). */
export function checkBatch(where: string, s: tf.Tensor, t: tf.Tensor, minN = 1): void {
  if (s.rank < 2 || t.rank < 2 || s.shape[0] !== t.shape[0] || s.shape[0]! < minN)
    throw new Error(
      `${where}: expected student and teacher features [N, ...] with one batch size N >= ${minN}, got student [${s.shape.join(', ')}] and teacher [${t.shape.join(', ')}]`,
    );
}

/** Batch norm with the batch's own statistics (a training-only connector), eps 1e-5. */
export function batchStatNorm(y: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(y, [0, 1, 2]);
    return tf.batchNorm(y, mean, variance, beta, gamma, 1e-5) as tf.Tensor4D;
  });
}

/** Connector of AB and OFD: 1x1 conv without bias, then batch-statistics BN: Cs -> Ct channels. */
export function conv1x1Bn(
  x: tf.Tensor4D,
  kernel: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
): tf.Tensor4D {
  return tf.tidy(() => batchStatNorm(tf.conv2d(x, kernel, 1, 'valid'), gamma, beta));
}

/** 1 where x > 0, else 0, with a zero gradient (tfjs's Step): masks built from features on the tape. */
export function positive(x: tf.Tensor): tf.Tensor {
  return tf.step(x, 0);
}
