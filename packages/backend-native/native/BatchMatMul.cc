// tfjs BatchMatMul on oneDNN matmul. Args: a, b, out, geometry[10] (see matmul_common.h).
#include "matmul_common.h"

RETORT_KERNEL(BatchMatMul) {
  auto g = retort::MatMulGeom::from(args, 3);
  if (g.has_bias()) throw retort::ArgError(retort::arg_name(3, "geometry") + ": BatchMatMul takes no bias");
  retort::matmul_run(g, args.in(0, g.a_size(), "a"), args.in(1, g.b_size(), "b"), nullptr, false,
                     args.out(2, g.out_size(), "out"));
}
