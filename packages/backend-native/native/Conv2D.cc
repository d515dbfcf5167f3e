// tfjs Conv2D (NHWC, HWIO filter) on oneDNN. Args: x, filter, out, geometry[17].
#include "conv_common.h"

RETORT_KERNEL(Conv2D) {
  auto g = retort::ConvGeom::from(args, 3, false);
  retort::conv_forward(g, args.in(0, g.src_size(), "x"), args.in(1, g.wei_size(), "filter"), nullptr, false, args.out(2, g.dst_size(), "out"));
}
