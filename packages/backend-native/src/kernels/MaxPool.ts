/** MaxPool (2-D, NHWC, float32) on oneDNN's pooling_max. */
import { poolForwardKernel } from './pool_util.js';

export const maxPool = poolForwardKernel('MaxPool', (addon) => addon.MaxPool);
