// seedrandom as tfjs-core's ES-module build imports it (`import * as seedrandom`, then
// `seedrandom.alea`): the CommonJS package exposes its generators only as properties of its
// default export, which Node's CommonJS interop does not lift into named exports.
import { createRequire } from 'node:module';

const fromCore = createRequire(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core'));
const sr = fromCore('seedrandom');
export default sr;
export const { alea, xor128, xorwow, xorshift7, xor4096, tychei } = sr;
