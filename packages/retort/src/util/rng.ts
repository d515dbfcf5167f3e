/**
 * Seeded random numbers whose whole state is one uint32 array, so a checkpoint can save and restore
 * it and a resumed run draws exactly the numbers the uninterrupted run would have drawn.
 * Generator: xoshiro128** (Blackman & Vigna 2018).
 */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number) {
    // splitmix32 expands one seed into four non-zero state words.
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** Next uint32. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** A permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Uint32Array {
    const a = new Uint32Array(n);
    for (let i = 0; i < n; i++) a[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }

  getState(): number[] {
    return Array.from(this.s);
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4) throw new Error(`Rng.setState: expected 4 words, got ${state.length}`);
    this.s = Uint32Array.from(state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let installed: Rng | null = null;
const nativeRandom = Math.random;

/**
 * Makes Math.random draw from a seeded Rng. tfjs's initializers and dropout draw their seeds from
 * Math.random when none is given, so this is what makes a whole run (init, dropout, shuffling)
 * repeatable. Returns the Rng so its state can be checkpointed.
 */
export function seedEverything(seed: number): Rng {
  installed = new Rng(seed);
  const rng = installed;
  Math.random = () => rng.next();
  return rng;
}

/** Restores the platform Math.random. */
export function unseed(): void {
  Math.random = nativeRandom;
  installed = null;
}

/** The Rng behind Math.random, if seedEverything was called. */
export function globalRng(): Rng | null {
  return installed;
}

/**
 * A 32-bit hash of the integers (murmur3's finaliser folded over them): stateless random draws
 * keyed by (seed, epoch, dataset index), the same again on resume without saving anything.
 */
export function hash32(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}
