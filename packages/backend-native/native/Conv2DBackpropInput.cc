// tfjs Conv2DBackpropInput (gradient of Conv2D w.r.t. its input). Args: dy, filter, dx(out), geometry[17].
#include "conv_common.h"

RETORT_KERNEL(Conv2DBackpropInput) {
  auto g = retort::ConvGeom::from(args, 3, false);
  retort::conv_backward_data(g, args.in(0, g.dst_size(), "dy"), args.in(1, g.wei_size(), "filter"), args.out(2, g.src_size(), "dx"));
}
