// tfjs AvgPool (NHWC, 2-D) on oneDNN. Args: x, out, geometry[14].
// tfjs divides each window's sum by the number of cells inside the input (padding excluded), which is
// oneDNN's pooling_avg_exclude_padding.
#include "pool_common.h"

RETORT_KERNEL(AvgPool) {
  static retort::PrimitiveCache<retort::PoolFwdEntry> cache;
  auto g = retort::PoolGeom::from(args, 2);
  retort::pool_forward(cache, g, dnnl::algorithm::pooling_avg_exclude_padding, args.in(0, g.src_size(), "x"),
                       args.out(1, g.dst_size(), "out"));
}
