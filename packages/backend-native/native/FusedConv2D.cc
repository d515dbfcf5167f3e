// tfjs FusedConv2D with bias and relu/linear activation on oneDNN (bias and relu fused as a post-op).
// Args: x, filter, out, geometry[17], bias (Float32Array or null), relu (0/1).
#include "conv_common.h"

RETORT_KERNEL(FusedConv2D) {
  auto g = retort::ConvGeom::from(args, 3, false);
  const float* bias = args.length(4) > 0 ? args.f32(4, size_t(g.oc)) : nullptr;
  retort::conv_forward(g, args.f32(0, g.src_size()), args.f32(1, g.wei_size()), bias, args.i64(5) != 0,
                       args.f32(2, g.dst_size()));
}
