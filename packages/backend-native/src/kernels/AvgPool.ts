/**
 * AvgPool (2-D, NHWC, float32) on oneDNN. tfjs divides by the number of cells inside the input, so
 * the native side uses pooling_avg_exclude_padding.
 */
import { poolForwardKernel } from './pool_util.js';

export const avgPool = poolForwardKernel('AvgPool', (addon) => addon.AvgPool);
