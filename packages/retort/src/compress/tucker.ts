/**
 * Tucker-2 decomposition of a conv kernel: Kim, Park, Yoo, Choi, Yang & Shin, "Compression of Deep
 * Convolutional Neural Networks for Fast and Low Power Mobile Applications" (ICLR 2016). A kernel
 * K [kh, kw, Cin, Cout] (HWIO) is approximated by its HOSVD on the two channel modes (De Lathauwer,
 * De Moor & Vandewalle, "A Multilinear Singular Value Decomposition", SIAM J. Matrix Anal. Appl. 2000):
 *
 *   K ~ C x_in U_in x_out U_out,   C = K x_in U_in^T x_out U_out^T   [kh, kw, R1, R2]
 *
 * with U_in [Cin, R1] the leading left singular vectors of the mode-Cin unfolding [Cin, kh kw Cout]
 * and U_out [Cout, R2] those of the mode-Cout unfolding [Cout, kh kw Cin]. The spatial modes stay
 * whole: they are 3 x 3 at most in the models this targets, too small to gain from. As layers: a
 * 1 x 1 conv Cin -> R1 with kernel U_in, a kh x kw conv R1 -> R2 with kernel C, a 1 x 1 conv
 * R2 -> Cout with kernel U_out^T. Both U have orthonormal columns, so the approximation is K
 * projected on two subspaces: its error is sqrt(||K||^2 - ||C||^2), and at full ranks (R1 = Cin,
 * R2 = Cout) the three layers compute K exactly.
 *
 * The ranks come from a rule, per mode: an energy threshold and a size target as in lowrank.ts, or
 * the rank that empirical variational Bayesian matrix factorization (EVBMF) finds in each unfolding,
 * which is how Kim et al. choose them (vbmfRank below).
 */
import { chooseRank, type Svd, svd } from './lowrank.js';

/** [kh, kw, Cin, Cout]: a conv kernel in HWIO layout. */
export type KernelShape = readonly [number, number, number, number];

/** How to pick [R1, R2]: per-mode energy, a size target for the three kernels, or EVBMF. */
export type TuckerRankRule = { energy: number } | { sizeFraction: number } | 'vbmf';

/** SVDs of the unfoldings: `input` of [kh kw Cout, Cin], `output` of [kh kw Cin, Cout]. */
export interface ChannelSvds {
  /** Right singular vectors = the left ones of the mode-Cin unfolding: U_in's columns. */
  input: Svd;
  /** Right singular vectors = the left ones of the mode-Cout unfolding: U_out's columns. */
  output: Svd;
}

/** The SVDs of the two channel unfoldings of `kernel` [kh, kw, Cin, Cout]. */
export function channelSvds(kernel: ArrayLike<number>, shape: KernelShape): ChannelSvds {
  const [kh, kw, cin, cout] = shape;
  const p = kh * kw;
  if (kernel.length !== p * cin * cout)
    throw new Error(`tucker: ${kernel.length} values for a [${shape.join(', ')}] kernel`);
  // HWIO row-major is already [kh kw Cin, Cout]; the Cin mode needs the channel axes swapped.
  const t = new Float32Array(kernel.length);
  for (let s = 0; s < p; s++)
    for (let i = 0; i < cin; i++)
      for (let o = 0; o < cout; o++) t[(s * cout + o) * cin + i] = kernel[(s * cin + i) * cout + o]!;
  return { input: svd(t, p * cout, cin), output: svd(kernel, p * cin, cout) };
}

/** Weights of the three kernels at ranks [r1, r2] (no bias): Cin R1 + kh kw R1 R2 + R2 Cout. */
export function tuckerWeights(shape: KernelShape, r1: number, r2: number): number {
  const [kh, kw, cin, cout] = shape;
  return cin * r1 + kh * kw * r1 * r2 + r2 * cout;
}

/**
 * Ranks [rho Cin, rho Cout] (rounded down, at least 1) with the largest rho whose three kernels hold
 * at most `fraction` of the kh kw Cin Cout weights: the root of kh kw Cin Cout rho^2 +
 * (Cin^2 + Cout^2) rho = fraction kh kw Cin Cout. The same rho on both modes keeps the core's
 * aspect that of the kernel.
 */
export function sizeRanks(shape: KernelShape, fraction: number): [number, number] {
  if (!(fraction > 0 && fraction <= 1))
    throw new Error(`tucker: sizeFraction must be in (0, 1], got ${fraction}`);
  const [kh, kw, cin, cout] = shape;
  const a = kh * kw * cin * cout;
  const b = cin * cin + cout * cout;
  const rho = (-b + Math.sqrt(b * b + 4 * a * fraction * a)) / (2 * a);
  const clamp = (r: number, max: number) => Math.max(1, Math.min(max, r));
  return [clamp(Math.floor(rho * cin + 1e-9), cin), clamp(Math.floor(rho * cout + 1e-9), cout)];
}

/** [R1, R2] by `rule` (each at least 1, at most the mode's rank). */
export function chooseRanks(d: ChannelSvds, shape: KernelShape, rule: TuckerRankRule): [number, number] {
  if (rule === 'vbmf') {
    const r = (x: Svd) => Math.max(1, vbmfRank(x.s, x.rows, x.cols).rank);
    return [r(d.input), r(d.output)];
  }
  if ('sizeFraction' in rule) return sizeRanks(shape, rule.sizeFraction);
  if (!(rule.energy > 0 && rule.energy <= 1))
    throw new Error(`tucker: energy must be in (0, 1], got ${rule.energy}`);
  return [chooseRank(d.input, rule), chooseRank(d.output, rule)];
}

export interface TuckerKernels {
  /** U_in as a [1, 1, Cin, R1] kernel. */
  first: Float32Array;
  /** The core C [kh, kw, R1, R2]. */
  core: Float32Array;
  /** U_out^T as a [1, 1, R2, Cout] kernel. */
  last: Float32Array;
  /** ||K - K~||_F / ||K||_F = sqrt(||K||^2 - ||C||^2) / ||K|| (0 for a zero kernel). */
  relError: number;
}

/** The three kernels of `kernel` [kh, kw, Cin, Cout] at ranks [r1, r2] (see the file header). */
export function tuckerKernels(
  kernel: ArrayLike<number>,
  shape: KernelShape,
  d: ChannelSvds,
  r1: number,
  r2: number,
): TuckerKernels {
  const [kh, kw, cin, cout] = shape;
  const p = kh * kw;
  if (!(Number.isInteger(r1) && r1 >= 1 && r1 <= cin && Number.isInteger(r2) && r2 >= 1 && r2 <= cout))
    throw new Error(`tucker: ranks must be integers in [1, ${cin}] and [1, ${cout}], got ${r1}, ${r2}`);
  const uin = (i: number, a: number) => d.input.v[i * cin + a]!;
  const uout = (o: number, b: number) => d.output.v[o * cout + b]!;
  const first = new Float32Array(cin * r1);
  for (let i = 0; i < cin; i++) for (let a = 0; a < r1; a++) first[i * r1 + a] = uin(i, a);
  const last = new Float32Array(r2 * cout);
  for (let b = 0; b < r2; b++) for (let o = 0; o < cout; o++) last[b * cout + o] = uout(o, b);
  // Contract the Cout mode first (t [p, Cin, R2]), then Cin: two small products instead of one big one.
  const t = new Float64Array(p * cin * r2);
  for (let s = 0; s < p; s++)
    for (let i = 0; i < cin; i++) {
      const row = (s * cin + i) * cout;
      for (let b = 0; b < r2; b++) {
        let acc = 0;
        for (let o = 0; o < cout; o++) acc += kernel[row + o]! * uout(o, b);
        t[(s * cin + i) * r2 + b] = acc;
      }
    }
  const core = new Float32Array(p * r1 * r2);
  let coreEnergy = 0;
  for (let s = 0; s < p; s++)
    for (let a = 0; a < r1; a++)
      for (let b = 0; b < r2; b++) {
        let acc = 0;
        for (let i = 0; i < cin; i++) acc += uin(i, a) * t[(s * cin + i) * r2 + b]!;
        core[(s * r1 + a) * r2 + b] = acc;
        coreEnergy += acc * acc;
      }
  let energy = 0;
  for (let j = 0; j < kernel.length; j++) energy += kernel[j]! ** 2;
  const relError = energy > 0 ? Math.sqrt(Math.max(0, energy - coreEnergy) / energy) : 0;
  return { first, core, last, relError };
}

/**
 * The EVB threshold constant tau_ of Nakajima, Tomioka, Sugiyama & Babacan, "Condition for Perfect
 * Dimensionality Recovery by Variational Bayesian PCA" (JMLR 2015): the zero of the decreasing
 * Phi(tau) + Phi(tau / alpha), Phi(z) = ln(z + 1) / z - 1/2, for alpha = L / M in (0, 1]. The public
 * VBMF code Kim et al. used approximates it by 2.5129 sqrt(alpha), exact at alpha = 1 only.
 */
export function vbmfTau(alpha: number): number {
  const phi = (z: number) => Math.log1p(z) / z - 0.5;
  const f = (t: number) => phi(t) + phi(t / alpha);
  // f > 0 near 0 (Phi -> 1/2) and < 0 for large tau; the root lies between alpha-ish and a few.
  let lo = 1e-6;
  let hi = 10;
  while (f(hi) > 0) hi *= 2;
  for (let k = 0; k < 200 && hi - lo > 1e-13 * hi; k++) {
    const mid = 0.5 * (lo + hi);
    if (f(mid) > 0) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

export interface VbmfEstimate {
  /** Number of singular values above the EVB threshold (0: the matrix looks like noise). */
  rank: number;
  /** The estimated noise variance per entry. */
  sigma2: number;
  /** The EVB threshold on singular values: sqrt(M sigma2 (1 + tau_) (1 + alpha / tau_)). */
  threshold: number;
}

/**
 * The rank of a [rows, cols] matrix Y by the analytic empirical VBMF solution (Nakajima, Sugiyama,
 * Babacan & Tomioka, "Global Analytic Solution of Fully-observed Variational Bayesian Matrix
 * Factorization", JMLR 2013), given its singular values `s` (descending; those past min(rows, cols)
 * are ignored). With L = min(rows, cols), M = max(rows, cols), alpha = L / M, gamma_h the singular
 * values and x_h = gamma_h^2 / (M sigma2):
 *
 * - Component h survives EVB iff x_h > x_ = (1 + tau_)(1 + alpha / tau_) (vbmfTau), i.e. gamma_h is
 *   above the threshold sqrt(M sigma2 x_); the rank is the number of survivors.
 * - The noise variance sigma2 minimizes the free energy (Nakajima et al. 2015, up to constants)
 *   sum_h [x_h - ln x_h] + sum_{h: x_h > x_} [ln(tau_h + 1) + alpha ln(tau_h / alpha + 1) - tau_h],
 *   tau_h = (x_h - (1 + alpha) + sqrt((x_h - (1 + alpha))^2 - 4 alpha)) / 2, over
 *   [max(gamma_{H+1}^2 / (M x_), mean_{h > H} gamma_h^2 / M), sum_h gamma_h^2 / (L M)], H =
 *   ceil(L / (1 + alpha)) - 1 the largest rank EVB can return. The objective can have several local
 *   minima, so it is scanned on a log grid and the best cell refined by golden-section search.
 */
export function vbmfRank(s: ArrayLike<number>, rows: number, cols: number): VbmfEstimate {
  const L = Math.min(rows, cols);
  const M = Math.max(rows, cols);
  const alpha = L / M;
  const g2 = Float64Array.from({ length: L }, (_, h) => (s[h] ?? 0) ** 2);
  const tauBar = vbmfTau(alpha);
  const xBar = (1 + tauBar) * (1 + alpha / tauBar);
  const total = g2.reduce((a, x) => a + x, 0);
  if (!(total > 0)) return { rank: 0, sigma2: 0, threshold: 0 };
  const hMax = Math.min(Math.ceil(L / (1 + alpha)) - 1, L);
  const tail = g2.slice(Math.min(hMax, L - 1));
  const upper = total / (L * M);
  const lower = Math.min(
    upper,
    Math.max(tail[0]! / (M * xBar), tail.reduce((a, x) => a + x, 0) / tail.length / M),
  );
  const tauOf = (x: number) => 0.5 * (x - (1 + alpha) + Math.sqrt((x - (1 + alpha)) ** 2 - 4 * alpha));
  // -ln x_h = ln sigma2 + (a constant): written so, a zero singular value costs no infinity.
  const energy = (logS2: number) => {
    const sigma2 = Math.exp(logS2);
    let e = 0;
    for (let h = 0; h < L; h++) {
      const x = g2[h]! / (M * sigma2);
      e += x + logS2;
      if (x > xBar) {
        const t = tauOf(x);
        e += Math.log1p(t) + alpha * Math.log1p(t / alpha) - t;
      }
    }
    return e;
  };
  const lo = Math.log(Math.max(lower, upper * 1e-12));
  const hi = Math.log(upper);
  const n = 64;
  const at = (k: number) => lo + ((hi - lo) * k) / n;
  let best = 0;
  for (let k = 1; k <= n; k++) if (energy(at(k)) < energy(at(best))) best = k;
  let a = at(Math.max(0, best - 1));
  let b = at(Math.min(n, best + 1));
  const phi = (Math.sqrt(5) - 1) / 2;
  for (let k = 0; k < 80 && b - a > 1e-12; k++) {
    const c = b - phi * (b - a);
    const d = a + phi * (b - a);
    if (energy(c) < energy(d)) b = d;
    else a = c;
  }
  const sigma2 = Math.exp(0.5 * (a + b));
  const threshold = Math.sqrt(M * sigma2 * xBar);
  let rank = 0;
  while (rank < L && Math.sqrt(g2[rank]!) > threshold) rank++;
  return { rank, sigma2, threshold };
}
