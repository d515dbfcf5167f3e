// tfjs BatchMatMul on oneDNN matmul. Args: a, b, out, geometry[10] (see matmul_common.h).
#include "matmul_common.h"

RETORT_KERNEL(BatchMatMul) {
  auto g = retort::MatMulGeom::from(args, 3);
  if (g.has_bias()) throw retort::ArgError("BatchMatMul takes no bias");
  retort::matmul_run(g, args.f32(0, g.a_size()), args.f32(1, g.b_size()), nullptr, false, args.f32(2, g.out_size()));
}
