/**
 * The per-tensor encodings of a Retort .rtz bundle (rtz.ts). Every encoding is lossless: the
 * encoder keeps a candidate only if decoding it gives back the float32 bit patterns it started
 * from (the sign of zero included: pruning by multiplying with a 0 mask leaves -0 wherever the
 * weight was negative), and the smallest exact candidate wins. Payloads, all little-endian:
 *   fp32             n x f32.
 *   codebook         u16 k (1..256), k x f32 codebook, n indices of b = ceil(log2 k) bits packed
 *                    from the lowest bit of each byte up (b = 0 when k = 1: a constant tensor).
 *   sparse           u8 flags (bit 0: zero-sign map present), ceil(n/8) bytes of occupancy mask
 *                    (bit i set: value i is not +-0), [ceil(z/8) bytes, bit j set: the j-th zero
 *                    is -0, for z zeros], then the non-zero values as f32.
 *   sparse-codebook  as sparse, with the non-zero values as a codebook block (u16 k, k x f32, bits).
 *   int8             C x f32 scales (C = the last axis, a tfjs conv/dense kernel's output channels),
 *                    then n x i8 codes q with value fround(q * scale[i mod C]); code -128 is -0.
 */

export type RtzEncoding = 'fp32' | 'codebook' | 'sparse' | 'sparse-codebook' | 'int8';

/** Every encoding a bundle may use; fp32 always applies. */
export const RTZ_ENCODINGS: readonly RtzEncoding[] = [
  'fp32',
  'codebook',
  'sparse',
  'sparse-codebook',
  'int8',
];

const MAX_BOOK = 256;
const NEG_ZERO = 0x80000000;

const bitsFor = (k: number): number => (k <= 1 ? 0 : 32 - Math.clz32(k - 1));
const packedLength = (count: number, bits: number): number => Math.ceil((count * bits) / 8);

/** Distinct bit patterns of `values` (at most 256, else null) and each value's index into them. */
function codebookOf(values: Uint32Array): { book: number[]; idx: Uint8Array } | null {
  const map = new Map<number, number>();
  const book: number[] = [];
  const idx = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let j = map.get(v);
    if (j === undefined) {
      if (book.length === MAX_BOOK) return null;
      j = book.length;
      map.set(v, j);
      book.push(v);
    }
    idx[i] = j;
  }
  return { book, idx };
}

const bookLength = (k: number, count: number): number => 2 + 4 * k + packedLength(count, bitsFor(k));

function writeBook(view: DataView, at: number, book: readonly number[], idx: Uint8Array): void {
  view.setUint16(at, book.length, true);
  at += 2;
  for (const v of book) {
    view.setUint32(at, v, true);
    at += 4;
  }
  const bits = bitsFor(book.length);
  let acc = 0;
  let held = 0;
  for (const j of idx) {
    acc |= j << held;
    held += bits;
    while (held >= 8) {
      view.setUint8(at++, acc & 0xff);
      acc >>>= 8;
      held -= 8;
    }
  }
  if (held > 0) view.setUint8(at, acc & 0xff);
}

/** Reads a codebook block of `count` values at `at` into out[0..count); returns the end offset. */
function readBook(view: DataView, at: number, end: number, count: number, out: Uint32Array): number {
  if (at + 2 > end) throw new Error('codebook block cut short');
  const k = view.getUint16(at, true);
  if (k < 1 || k > MAX_BOOK) throw new Error(`codebook of ${k} entries (1 to ${MAX_BOOK} allowed)`);
  const bits = bitsFor(k);
  const need = bookLength(k, count);
  if (at + need > end) throw new Error(`codebook block needs ${need} bytes, ${end - at} left`);
  const book = new Uint32Array(k);
  for (let j = 0; j < k; j++) book[j] = view.getUint32(at + 2 + 4 * j, true);
  let p = at + 2 + 4 * k;
  let acc = 0;
  let held = 0;
  const mask = (1 << bits) - 1;
  for (let i = 0; i < count; i++) {
    while (held < bits) {
      acc |= view.getUint8(p++) << held;
      held += 8;
    }
    const j = acc & mask;
    acc >>>= bits;
    held -= bits;
    if (j >= k) throw new Error(`index ${j} at value ${i}, the codebook has ${k} entries`);
    out[i] = book[j]!;
  }
  return at + need;
}

function encodeFp32(bits: Uint32Array): Uint8Array {
  const out = new Uint8Array(4 * bits.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < bits.length; i++) view.setUint32(4 * i, bits[i]!, true);
  return out;
}

function encodeCodebook(bits: Uint32Array): Uint8Array | null {
  const cb = codebookOf(bits);
  if (cb === null) return null;
  const out = new Uint8Array(bookLength(cb.book.length, bits.length));
  writeBook(new DataView(out.buffer), 0, cb.book, cb.idx);
  return out;
}

function encodeSparse(bits: Uint32Array, withBook: boolean): Uint8Array | null {
  const n = bits.length;
  const nonZero = bits.filter((v) => (v & 0x7fffffff) !== 0);
  // Mask and values alone would outgrow fp32: not worth building.
  if (!withBook && 4 * nonZero.length + packedLength(n, 1) >= 4 * n) return null;
  const zeros = n - nonZero.length;
  const negZeros = bits.some((v) => v === NEG_ZERO);
  const head = 1 + packedLength(n, 1) + (negZeros ? packedLength(zeros, 1) : 0);
  const cb = withBook ? codebookOf(nonZero) : null;
  if (withBook && cb === null) return null;
  const out = new Uint8Array(head + (cb ? bookLength(cb.book.length, nonZero.length) : 4 * nonZero.length));
  const view = new DataView(out.buffer);
  out[0] = negZeros ? 1 : 0;
  const signAt = 1 + packedLength(n, 1);
  for (let i = 0, z = 0; i < n; i++) {
    const v = bits[i]!;
    if ((v & 0x7fffffff) !== 0) out[1 + (i >> 3)]! |= 1 << (i & 7);
    else {
      if (v === NEG_ZERO) out[signAt + (z >> 3)]! |= 1 << (z & 7);
      z++;
    }
  }
  if (cb) writeBook(view, head, cb.book, cb.idx);
  else for (let j = 0; j < nonZero.length; j++) view.setUint32(head + 4 * j, nonZero[j]!, true);
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** A float32 scale s > 0 with every value of channel c equal to fround(q * s), |q| <= 127; else null. */
function channelScale(values: Float32Array, c: number, channels: number): number | null {
  let max = 0;
  for (let j = c; j < values.length; j += channels) {
    const a = Math.abs(values[j]!);
    if (!(a <= 3.4028234663852886e38)) return null;
    if (a > max) max = a;
  }
  if (max === 0) return 0;
  const fits = (s: number): boolean => {
    for (let j = c; j < values.length; j += channels) {
      const q = Math.round(values[j]! / s);
      if (q > 127 || q < -127 || Math.fround(q * s) !== values[j]) return false;
    }
    return true;
  };
  // The largest |w| is |q| * s for some q in 1..127; s is fround(max / |q|) give or take rounding,
  // so a couple of neighbouring float32s around each quotient cover it.
  for (let q = 127; q >= 1; q--) {
    f32[0] = max / q;
    const base = u32[0]!;
    for (const d of [0, 1, -1, 2, -2]) {
      u32[0] = base + d;
      const s = f32[0];
      if (s > 0 && Number.isFinite(s) && fits(s)) return s;
    }
  }
  return null;
}

function encodeInt8(bits: Uint32Array, shape: readonly number[]): Uint8Array | null {
  // A rank-1 tensor would need one scale per value: never smaller than fp32.
  const channels = shape.length >= 2 ? shape[shape.length - 1]! : 0;
  if (channels === 0 || bits.length === 0) return null;
  const values = new Float32Array(bits.buffer, bits.byteOffset, bits.length);
  const scales: number[] = [];
  for (let c = 0; c < channels; c++) {
    const s = channelScale(values, c, channels);
    if (s === null) return null;
    scales.push(s);
  }
  const out = new Uint8Array(4 * channels + bits.length);
  const view = new DataView(out.buffer);
  for (const [c, s] of scales.entries()) view.setFloat32(4 * c, s, true);
  for (let i = 0; i < bits.length; i++) {
    const s = scales[i % channels]!;
    const code = bits[i] === NEG_ZERO ? -128 : s === 0 ? 0 : Math.round(values[i]! / s);
    view.setInt8(4 * channels + i, code);
  }
  return out;
}

/**
 * The float32 bit patterns of a tensor of `shape` stored as `encoding` in `bytes`. Throws a plain
 * Error saying what is wrong (the caller names the file and tensor); it checks every length first.
 */
export function decodeTensor(encoding: string, bytes: Uint8Array, shape: readonly number[]): Uint32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint32Array(n);
  const exact = (need: number, what: string) => {
    if (bytes.length !== need)
      throw new Error(`${encoding} payload of ${bytes.length} bytes, ${what} needs ${need}`);
  };
  switch (encoding) {
    case 'fp32':
      exact(4 * n, `${n} values`);
      for (let i = 0; i < n; i++) out[i] = view.getUint32(4 * i, true);
      return out;
    case 'codebook':
      if (readBook(view, 0, bytes.length, n, out) !== bytes.length)
        throw new Error('codebook payload has trailing bytes');
      return out;
    case 'sparse':
    case 'sparse-codebook': {
      const maskAt = 1;
      if (bytes.length < 1 + packedLength(n, 1)) throw new Error('sparse payload cut short');
      const flags = bytes[0]!;
      if (flags > 1) throw new Error(`sparse flags ${flags} (only bit 0 is defined)`);
      let nonZero = 0;
      for (let i = 0; i < n; i++) nonZero += (bytes[maskAt + (i >> 3)]! >> (i & 7)) & 1;
      const zeros = n - nonZero;
      const signAt = maskAt + packedLength(n, 1);
      const valuesAt = signAt + (flags & 1 ? packedLength(zeros, 1) : 0);
      const values = new Uint32Array(nonZero);
      if (encoding === 'sparse') {
        exact(valuesAt + 4 * nonZero, `${n} values with ${nonZero} non-zero`);
        for (let j = 0; j < nonZero; j++) values[j] = view.getUint32(valuesAt + 4 * j, true);
      } else if (
        valuesAt > bytes.length ||
        readBook(view, valuesAt, bytes.length, nonZero, values) !== bytes.length
      )
        throw new Error('sparse-codebook payload length does not match its mask and codebook');
      for (let i = 0, j = 0, z = 0; i < n; i++) {
        if ((bytes[maskAt + (i >> 3)]! >> (i & 7)) & 1) {
          const v = values[j++]!;
          if ((v & 0x7fffffff) === 0) throw new Error(`value ${i} is marked non-zero but stored as zero`);
          out[i] = v;
        } else {
          out[i] = flags & 1 && (bytes[signAt + (z >> 3)]! >> (z & 7)) & 1 ? NEG_ZERO : 0;
          z++;
        }
      }
      return out;
    }
    case 'int8': {
      const channels = shape.length >= 2 ? shape[shape.length - 1]! : 0;
      if (channels === 0) throw new Error(`int8 needs a tensor of rank >= 2 with channels, got [${shape}]`);
      exact(4 * channels + n, `${n} values in ${channels} channels`);
      const scales = Array.from({ length: channels }, (_, c) => view.getFloat32(4 * c, true));
      const bad = scales.findIndex((s) => !(s >= 0 && Number.isFinite(s)));
      if (bad >= 0)
        throw new Error(`int8 scale ${scales[bad]} of channel ${bad} is not a finite non-negative number`);
      const vals = new Float32Array(out.buffer);
      for (let i = 0; i < n; i++) {
        const q = view.getInt8(4 * channels + i);
        vals[i] = q === -128 ? -0 : q * scales[i % channels]!;
      }
      return out;
    }
    default:
      throw new Error(`unknown encoding '${encoding}' (known: ${RTZ_ENCODINGS.join(', ')})`);
  }
}

function build(encoding: RtzEncoding, bits: Uint32Array, shape: readonly number[]): Uint8Array | null {
  switch (encoding) {
    case 'fp32':
      return encodeFp32(bits);
    case 'codebook':
      return encodeCodebook(bits);
    case 'sparse':
      return encodeSparse(bits, false);
    case 'sparse-codebook':
      return encodeSparse(bits, true);
    case 'int8':
      return encodeInt8(bits, shape);
  }
}

/**
 * The smallest of `allowed` (fp32 is always a fallback) that stores the float32 `values` of
 * `shape` exactly: each candidate is decoded and compared bit for bit before it may win.
 */
export function encodeTensor(
  values: Float32Array,
  shape: readonly number[],
  allowed: readonly RtzEncoding[] = RTZ_ENCODINGS,
): { encoding: RtzEncoding; bytes: Uint8Array } {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const candidates: { encoding: RtzEncoding; bytes: Uint8Array }[] = [];
  for (const encoding of new Set<RtzEncoding>([...allowed, 'fp32'])) {
    const bytes = build(encoding, bits, shape);
    if (bytes !== null) candidates.push({ encoding, bytes });
  }
  candidates.sort((a, b) => a.bytes.length - b.bytes.length);
  for (const c of candidates) {
    const back = decodeTensor(c.encoding, c.bytes, shape);
    if (back.length === bits.length && back.every((v, i) => v === bits[i])) return c;
  }
  throw new Error('rtz: no encoding reproduces the tensor (fp32 failed its own check)');
}
