// tfjs FusedConv2D with bias and relu/linear activation on oneDNN (bias and relu fused as a post-op).
// Args: x, filter, out, geometry[17], bias (Float32Array or null), relu (0/1).
#include "conv_common.h"

RETORT_KERNEL(FusedConv2D) {
  auto g = retort::ConvGeom::from(args, 3, false);
  const float* bias = args.len(4, "bias") > 0 ? args.in(4, g.oc, "bias") : nullptr;
  const bool relu = args.count(5, "relu", 0, 1) != 0;
  retort::conv_forward(g, args.in(0, g.src_size(), "x"), args.in(1, g.wei_size(), "filter"), bias, relu,
                       args.out(2, g.dst_size(), "out"));
}
