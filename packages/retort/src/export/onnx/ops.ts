/**
 * The ONNX export's op table: tfjs layer class name -> emitter and int8 placement, one family per
 * file. A layer class without an entry is not supported.
 */
import type * as tfl from '@tensorflow/tfjs-layers';
import type { OpEntry } from './emit.js';
import { ACTIVATION_OPS } from './ops-activation.js';
import { CONV_OPS } from './ops-conv.js';
import { DENSE_OPS } from './ops-dense.js';
import { NORM_OPS } from './ops-norm.js';
import { POOL_OPS } from './ops-pool.js';
import { SHAPE_OPS } from './ops-shape.js';

const OPS: ReadonlyMap<string, OpEntry> = new Map(
  Object.entries({ ...CONV_OPS, ...DENSE_OPS, ...NORM_OPS, ...POOL_OPS, ...ACTIVATION_OPS, ...SHAPE_OPS }),
);

/** The entry of `layer`'s class; throws naming the layer and its class when there is none. */
export function opFor(layer: tfl.layers.Layer): OpEntry {
  const cls = layer.getClassName();
  const op = OPS.get(cls);
  if (op === undefined)
    throw new Error(`onnx export: layer '${layer.name}' of class ${cls} is not supported`);
  return op;
}
