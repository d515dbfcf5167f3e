// Gradient of DepthwiseConv2dNative w.r.t. its filter. Args: x, dy, dw(out), geometry[17].
#include "conv_common.h"

RETORT_KERNEL(DepthwiseConv2dNativeBackpropFilter) {
  auto g = retort::ConvGeom::from(args, 3, true);
  retort::conv_backward_weights(g, args.in(0, g.src_size(), "x"), args.in(1, g.dst_size(), "dy"), args.out(2, g.wei_size(), "dw"));
}
