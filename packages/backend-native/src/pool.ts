/**
 * Reuses freed Float32Array storage for native kernel outputs. Fresh memory page-faults on first
 * touch (engine-notes: 90 ms for 33 MB vs 1.1 ms reused), which costs more than most kernels.
 * Buffers come back dirty: every native kernel overwrites its whole output.
 */
export class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private pooledBytes = 0;
  /** Arrays this pool handed out, with the number of tensor entries that hold each one. */
  private readonly owned = new Map<Float32Array, number>();

  constructor(private readonly maxPooledBytes = 1 << 30) {}

  /** A Float32Array of exactly `n` elements, from the pool when one is free. */
  alloc(n: number): Float32Array {
    const list = this.free.get(n);
    let a = list?.pop();
    if (a !== undefined) this.pooledBytes -= a.byteLength;
    else a = new Float32Array(n);
    this.owned.set(a, 0);
    return a;
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
    if (this.pooledBytes + a.byteLength > this.maxPooledBytes) return; // let GC have it
    let list = this.free.get(a.length);
    if (list === undefined) {
      list = [];
      this.free.set(a.length, list);
    }
    list.push(a);
    this.pooledBytes += a.byteLength;
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
