/**
 * PNG checks before pngjs: the pixel stream must inflate to exactly the bytes the rows need. A
 * short stream made pngjs read an uninitialised buffer (the same file decoded to different pixels
 * from run to run), so it is refused here, as are bad CRCs and missing chunks.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { checkPng, pngDataBytes } from '../../src/data/png-check.js';
import { fixPngCrcs } from '../fuzz/mutate.js';

const LIMITS = { maxSide: 16384, maxPixels: 2 ** 24 };

/** A 5x3 RGBA PNG whose IDAT holds `data` deflated (CRCs fixed). */
function withIdat(data: Uint8Array): Buffer {
  const png = new PNG({ width: 5, height: 3 });
  const good = PNG.sync.write(png);
  // Chunks after the signature: IHDR (25 bytes with length, type, CRC), then IDAT ... IEND.
  const ihdrEnd = 8 + 25;
  const idat = deflateSync(data);
  const chunk = Buffer.alloc(12 + idat.length);
  chunk.writeUInt32BE(idat.length, 0);
  chunk.write('IDAT', 4, 'latin1');
  idat.copy(chunk, 8);
  const iend = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0, 0, 0, 0]);
  return Buffer.from(fixPngCrcs(Buffer.concat([good.subarray(0, ihdrEnd), chunk, iend])));
}

it('rows of 1 filter byte + packed pixels; Adam7 passes add up per pass', () => {
  assert.equal(pngDataBytes(5, 3, 32, false), 3 * (1 + 20));
  assert.equal(pngDataBytes(1, 1, 1, false), 2);
  // 8x8 at 8 bits, interlaced: passes of 1x1, 1x1, 2x1, 2x2, 4x2, 4x4, 8x4 pixels.
  assert.equal(pngDataBytes(8, 8, 8, true), 2 + 2 + 3 + 6 + 10 + 20 + 36);
});

it('accepts exactly the rows the image needs; refuses a short or long pixel stream by name', () => {
  const need = pngDataBytes(5, 3, 32, false);
  checkPng(withIdat(new Uint8Array(need)), 'ok.png', LIMITS);
  assert.throws(
    () => checkPng(withIdat(new Uint8Array(need - 7)), 'short.png', LIMITS),
    /short\.png: not a valid PNG \(pixel data inflates to 56 bytes, the 5x3 image needs 63\)/,
  );
  assert.throws(
    () => checkPng(withIdat(new Uint8Array(need + 9)), 'long.png', LIMITS),
    /long\.png: not a valid PNG \(pixel data inflates to more than the 63 bytes the 5x3 image needs\)/,
  );
});

it('refuses a bad CRC, a chunk past the end, no IEND; sizes over the limits before inflating', () => {
  const ok = withIdat(new Uint8Array(pngDataBytes(5, 3, 32, false)));
  const crc = Buffer.from(ok);
  crc[45]! ^= 1; // a byte of IDAT's data
  assert.throws(() => checkPng(crc, 'crc.png', LIMITS), /CRC mismatch in chunk 'IDAT' at byte 33/);
  assert.throws(() => checkPng(ok.subarray(0, ok.length - 12), 'end.png', LIMITS), /no IEND chunk/);
  const long = Buffer.from(ok);
  long.writeUInt32BE(0x7fffffff, 33);
  assert.throws(
    () => checkPng(long, 'len.png', LIMITS),
    /chunk at byte 33 claims 2147483647 bytes past the end/,
  );
  const huge = Buffer.from(ok);
  huge.writeUInt32BE(20000, 16);
  assert.throws(
    () => checkPng(Buffer.from(fixPngCrcs(huge)), 'huge.png', LIMITS),
    /20000x3 pixels, over the image limits/,
  );
});
