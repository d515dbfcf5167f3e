// tfjs Conv2D (NHWC, HWIO filter) on oneDNN. Args: x, filter, out, geometry[17].
#include "conv_common.h"

RETORT_KERNEL(Conv2D) {
  auto g = retort::ConvGeom::from(args, 3, false);
  retort::conv_forward(g, args.f32(0, g.src_size()), args.f32(1, g.wei_size()), nullptr, false, args.f32(2, g.dst_size()));
}
