import { totalmem } from 'node:os';

/**
 * Reuses freed Float32Array storage for native kernel outputs. Fresh memory page-faults on first
 * touch (90 ms for 33 MB vs 1.1 ms reused, measured on these VMs; a 64 MB elementwise op took 105 ms
 * fresh and 2.4 ms pooled), which costs more than most kernels.
 * Buffers come back dirty: every native kernel overwrites its whole output.
 *
 * The pool keeps up to `maxPooledBytes` of free buffers; past that it evicts the sizes used least
 * recently, so a process that trains one model after another (a teacher then a student, a benchmark
 * of several models) keeps the current model's sizes instead of the first model's. A pool that
 * refused new buffers once full kept stale sizes forever: the second model then page-faulted every
 * step (ResNet-20 after DeepNN: 263 MiB of fresh buffers per step, 300-670 ms steps instead of 190).
 */
export class BufferPool {
  /** Free buffers by element count; Map order is least recently used first. */
  private readonly free = new Map<number, Float32Array[]>();
  private pooledBytes = 0;
  /** Arrays this pool handed out, with the number of tensor entries that hold each one. */
  private readonly owned = new Map<Float32Array, number>();

  constructor(readonly maxPooledBytes = defaultPoolBytes()) {}

  /** A Float32Array of exactly `n` elements, from the pool when one is free. */
  alloc(n: number): Float32Array {
    const list = this.free.get(n);
    let a = list?.pop();
    if (a !== undefined) {
      this.pooledBytes -= a.byteLength;
      this.touch(n, list!);
    } else a = new Float32Array(n);
    this.owned.set(a, 0);
    return a;
  }

  /** Marks size `n` as just used (moves it to the end of the eviction order). */
  private touch(n: number, list: Float32Array[]): void {
    this.free.delete(n);
    this.free.set(n, list);
  }

  isOwned(a: unknown): boolean {
    return a instanceof Float32Array && this.owned.has(a);
  }

  /** A tensor entry started to hold `a` (no-op for arrays the pool did not hand out). */
  retain(a: unknown): void {
    if (!(a instanceof Float32Array)) return;
    const c = this.owned.get(a);
    if (c !== undefined) this.owned.set(a, c + 1);
  }

  /** A tensor entry stopped holding `a`; the last one returns it to the pool. */
  release(a: unknown): void {
    if (!(a instanceof Float32Array)) return;
    const c = this.owned.get(a);
    if (c === undefined) return;
    if (c > 1) {
      this.owned.set(a, c - 1);
      return;
    }
    this.owned.delete(a);
    if (a.byteLength > this.maxPooledBytes) return; // larger than the whole pool: let GC have it
    const list = this.free.get(a.length) ?? [];
    list.push(a);
    this.touch(a.length, list);
    this.pooledBytes += a.byteLength;
    // Over the cap: drop buffers of the least recently used sizes (never the one just returned).
    for (const [n, old] of this.free) {
      if (this.pooledBytes <= this.maxPooledBytes) break;
      if (n === a.length) continue;
      while (old.length > 0 && this.pooledBytes > this.maxPooledBytes)
        this.pooledBytes -= old.pop()!.byteLength;
      if (old.length === 0) this.free.delete(n);
    }
    if (this.pooledBytes > this.maxPooledBytes) {
      list.pop();
      this.pooledBytes -= a.byteLength;
      if (list.length === 0) this.free.delete(a.length);
    }
  }

  /** Bytes currently parked in the pool. */
  get bytes(): number {
    return this.pooledBytes;
  }

  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}

/**
 * The pool's cap: RETORT_POOL_MB when set, else a quarter of the machine's memory, at most 4 GiB
 * (a training step of the zoo's largest models at batch 128 keeps 1-3 GiB of activations and
 * gradients alive; a step whose buffers do not all fit page-faults the rest every time).
 */
export function defaultPoolBytes(): number {
  const mb = process.env['RETORT_POOL_MB'];
  if (mb !== undefined && mb !== '') {
    const v = Number(mb);
    if (!(Number.isFinite(v) && v >= 0))
      throw new Error(`RETORT_POOL_MB=${mb}: expected a number of MiB (0 turns the buffer pool off)`);
    return v * 2 ** 20;
  }
  return Math.min(4 * 2 ** 30, Math.floor(totalmem() / 4));
}
