// tfjs Conv2DBackpropFilter (gradient of Conv2D w.r.t. its filter). Args: x, dy, dw(out), geometry[17].
#include "conv_common.h"

RETORT_KERNEL(Conv2DBackpropFilter) {
  auto g = retort::ConvGeom::from(args, 3, false);
  retort::conv_backward_weights(g, args.f32(0, g.src_size()), args.f32(1, g.dst_size()), args.f32(2, g.wei_size()));
}
