// Gradient of DepthwiseConv2dNative w.r.t. its filter. Args: x, dy, dw(out), geometry[17].
#include "conv_common.h"

RETORT_KERNEL(DepthwiseConv2dNativeBackpropFilter) {
  auto g = retort::ConvGeom::from(args, 3, true);
  retort::conv_backward_weights(g, args.f32(0, g.src_size()), args.f32(1, g.dst_size()), args.f32(2, g.wei_size()));
}
