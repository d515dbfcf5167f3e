// tfjs DepthwiseConv2dNative: filter [KH, KW, C, M], output channels C*M ordered c*M + m, which is
// oneDNN's grouped convolution with G = C groups of M outputs and weights in hwigo order.
// Args: x, filter, out, geometry[17] (oc slot = M).
#include "conv_common.h"

RETORT_KERNEL(DepthwiseConv2dNative) {
  auto g = retort::ConvGeom::from(args, 3, true);
  retort::conv_forward(g, args.in(0, g.src_size(), "x"), args.in(1, g.wei_size(), "filter"), nullptr, false, args.out(2, g.dst_size(), "out"));
}
