/**
 * Mutations of a valid file, as a mutation fuzzer makes them: bit flips, interesting bytes and
 * 32-bit values (sizes, lengths and counts are where readers trust their input), truncation,
 * deleted, duplicated and inserted chunks, and for text formats tokens that parsers treat
 * specially. One to three per case, all drawn from a seeded generator (case i of seed s is always
 * the same bytes).
 */
import { crc32 } from '../../src/data/png-check.js';
import type { Rng } from '../../src/util/rng.js';

const BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x0a];
const U32 = [0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x1000000];
const TOKENS = [
  '\n',
  ',',
  '"',
  "'",
  ':',
  '{',
  '}',
  '[',
  ']',
  '-',
  '#',
  '&a',
  '*a',
  '!!binary',
  'NaN',
  'Infinity',
  '1e39',
  '-1e40',
  '0x10',
  '1e999',
  '\u0000',
  '\uFEFF',
  '\r',
  '\t',
  '~',
  'null',
  '99999999999999999999',
  '.',
  '..',
  '/',
  '&x [*x, *x, *x]',
];

function flip(b: Uint8Array, r: Rng): Uint8Array {
  const out = Uint8Array.from(b);
  const n = 1 + r.int(8);
  for (let k = 0; k < n && out.length > 0; k++) out[r.int(out.length)]! ^= 1 << r.int(8);
  return out;
}

function setBytes(b: Uint8Array, r: Rng): Uint8Array {
  const out = Uint8Array.from(b);
  const n = 1 + r.int(4);
  for (let k = 0; k < n && out.length > 0; k++) out[r.int(out.length)] = BYTES[r.int(BYTES.length)]!;
  return out;
}

function setU32(b: Uint8Array, r: Rng): Uint8Array {
  if (b.length < 4) return flip(b, r);
  const out = Buffer.from(b);
  const at = r.int(out.length - 3);
  const v = r.int(4) === 0 ? r.int(0x100000000) : U32[r.int(U32.length)]!;
  if (r.int(2) === 0) out.writeUInt32BE(v >>> 0, at);
  else out.writeUInt32LE(v >>> 0, at);
  return out;
}

function truncate(b: Uint8Array, r: Rng): Uint8Array {
  return b.subarray(0, r.int(b.length + 1));
}

function cut(b: Uint8Array, r: Rng): Uint8Array {
  if (b.length < 2) return b;
  const at = r.int(b.length);
  const len = 1 + r.int(Math.min(64, b.length - at));
  return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
}

function duplicate(b: Uint8Array, r: Rng): Uint8Array {
  if (b.length === 0) return b;
  const at = r.int(b.length);
  const len = 1 + r.int(Math.min(256, b.length - at));
  const to = r.int(b.length + 1);
  const chunk = b.subarray(at, at + len);
  const times = 1 + r.int(r.int(8) === 0 ? 64 : 2);
  return Buffer.concat([b.subarray(0, to), ...Array.from({ length: times }, () => chunk), b.subarray(to)]);
}

function insertRandom(b: Uint8Array, r: Rng): Uint8Array {
  const at = r.int(b.length + 1);
  const junk = Uint8Array.from({ length: 1 + r.int(32) }, () => r.int(256));
  return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
}

function token(b: Uint8Array, r: Rng): Uint8Array {
  const at = r.int(b.length + 1);
  const t = Buffer.from(TOKENS[r.int(TOKENS.length)]!);
  const drop = r.int(3) === 0 ? r.int(Math.min(8, b.length - at) + 1) : 0;
  return Buffer.concat([b.subarray(0, at), t, b.subarray(at + drop)]);
}

const BINARY = [flip, flip, setBytes, setU32, setU32, truncate, cut, duplicate, insertRandom];

/** Case bytes: `seed` mutated one to three times. */
export function mutate(seed: Uint8Array, r: Rng, text: boolean): Uint8Array {
  const ops = text ? [...BINARY, token, token, token] : BINARY;
  let b = seed;
  const n = 1 + r.int(3);
  for (let k = 0; k < n; k++) b = ops[r.int(ops.length)]!(b, r);
  return b;
}

/**
 * Recomputes the CRC of every whole chunk of a PNG (after its 8-byte signature), so that a mutated
 * length, size or pixel stream gets past the CRC check into the decoder itself.
 */
export function fixPngCrcs(b: Uint8Array): Uint8Array {
  const out = Buffer.from(b);
  let at = 8;
  while (at + 12 <= out.length) {
    const len = out.readUInt32BE(at);
    if (at + 12 + len > out.length) break;
    out.writeUInt32BE(crc32(out.subarray(at + 4, at + 8 + len)), at + 8 + len);
    at += 12 + len;
  }
  return out;
}
