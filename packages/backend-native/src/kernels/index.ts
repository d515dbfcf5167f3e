/** The registration list: every native kernel, one line each (see kernel.ts for the contract). */

import { concat } from './Concat.js';
import { conv2D } from './Conv2D.js';
import { conv2DBackpropFilter } from './Conv2DBackpropFilter.js';
import { conv2DBackpropInput } from './Conv2DBackpropInput.js';
import { depthwiseConv2dNative } from './DepthwiseConv2dNative.js';
import { depthwiseConv2dNativeBackpropFilter } from './DepthwiseConv2dNativeBackpropFilter.js';
import { depthwiseConv2dNativeBackpropInput } from './DepthwiseConv2dNativeBackpropInput.js';
import { fusedConv2D } from './FusedConv2D.js';
import { gatherV2, unsortedSegmentSum } from './GatherV2.js';
import type { NativeKernel } from './kernel.js';
import { padV2 } from './PadV2.js';
import { retortAdamUpdate } from './RetortAdamUpdate.js';
import { retortBatchNormTrain, retortBatchNormTrainGrad } from './RetortBatchNormTrain.js';
import { retortGatherRowsDot, retortGatherRowsWeightedSum, retortScatterRows } from './RetortRows.js';
import { retortSgdUpdate } from './RetortSgdUpdate.js';
import { retortSymEig, retortSymEigGrad } from './RetortSymEig.js';
import { slice } from './Slice.js';
import { splitV } from './SplitV.js';
import { tile } from './Tile.js';
// @pool-matmul (pooling, BatchMatMul, _FusedMatMul)

import { fusedMatMul } from './_FusedMatMul.js';
import { avgPool } from './AvgPool.js';
import { avgPoolGrad } from './AvgPoolGrad.js';
import { batchMatMul } from './BatchMatMul.js';
import { maxPool } from './MaxPool.js';
import { maxPoolGrad } from './MaxPoolGrad.js';
// @elementwise (binary, unary, FusedBatchNorm)

import { addN } from './AddN.js';
import { binaryKernels } from './binary.js';
import { fusedBatchNorm } from './FusedBatchNorm.js';
import { unaryKernels } from './unary.js';
// @reductions (Sum, Mean, Max, Softmax, ...)

import { argMax } from './ArgMax.js';
import { max } from './Max.js';
import { mean } from './Mean.js';
import { min } from './Min.js';
import { prod } from './Prod.js';
import { softmax } from './Softmax.js';
import { sum } from './Sum.js';
import { transpose } from './Transpose.js';

export const nativeKernels: readonly NativeKernel[] = [
  conv2D,
  fusedConv2D,
  conv2DBackpropInput,
  conv2DBackpropFilter,
  depthwiseConv2dNative,
  depthwiseConv2dNativeBackpropInput,
  depthwiseConv2dNativeBackpropFilter,
  retortAdamUpdate,
  retortSgdUpdate,
  retortBatchNormTrain,
  retortBatchNormTrainGrad,
  retortSymEig,
  retortSymEigGrad,
  retortGatherRowsDot,
  retortGatherRowsWeightedSum,
  retortScatterRows,
  gatherV2,
  unsortedSegmentSum,
  slice,
  splitV,
  concat,
  padV2,
  tile,
  // @pool-matmul-list
  maxPool,
  maxPoolGrad,
  avgPool,
  avgPoolGrad,
  batchMatMul,
  fusedMatMul,
  // @elementwise-list
  ...binaryKernels,
  ...unaryKernels,
  addN,
  fusedBatchNorm,
  // @reductions-list
  sum,
  mean,
  max,
  min,
  prod,
  transpose,
  softmax,
  argMax,
];
