/**
 * Small dense linear algebra in float64 for what tfjs lacks: the symmetric eigendecomposition
 * (cyclic Jacobi rotations; Golub and Van Loan, section 8.5) behind KDSVD's singular vectors and the
 * low-rank factorizations of compress/lowrank.ts. Eigenvectors come sorted by descending eigenvalue,
 * each with its largest-magnitude entry positive (a deterministic sign).
 */

/** Eigen-decomposition of one symmetric c x c matrix (row-major, float64): descending values. */
export function jacobiEig(a: Float64Array, c: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(c * c);
  for (let i = 0; i < c; i++) v[i * c + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < c; p++) for (let q = p + 1; q < c; q++) off += m[p * c + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < c; p++) {
      for (let q = p + 1; q < c; q++) {
        const apq = m[p * c + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * c + q]! - m[p * c + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const cs = 1 / Math.sqrt(t * t + 1);
        const sn = t * cs;
        for (let k = 0; k < c; k++) {
          const mkp = m[k * c + p]!;
          const mkq = m[k * c + q]!;
          m[k * c + p] = cs * mkp - sn * mkq;
          m[k * c + q] = sn * mkp + cs * mkq;
        }
        for (let k = 0; k < c; k++) {
          const mpk = m[p * c + k]!;
          const mqk = m[q * c + k]!;
          m[p * c + k] = cs * mpk - sn * mqk;
          m[q * c + k] = sn * mpk + cs * mqk;
        }
        for (let k = 0; k < c; k++) {
          const vkp = v[k * c + p]!;
          const vkq = v[k * c + q]!;
          v[k * c + p] = cs * vkp - sn * vkq;
          v[k * c + q] = sn * vkp + cs * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: c }, (_, i) => i).sort((i, j) => m[j * c + j]! - m[i * c + i]!);
  const values = Float64Array.from(order, (i) => m[i * c + i]!);
  const vectors = new Float64Array(c * c);
  order.forEach((src, dst) => {
    let big = 0;
    for (let k = 0; k < c; k++) if (Math.abs(v[k * c + src]!) > Math.abs(big)) big = v[k * c + src]!;
    const sign = big < 0 ? -1 : 1;
    for (let k = 0; k < c; k++) vectors[k * c + dst] = sign * v[k * c + src]!;
  });
  return { values, vectors };
}
