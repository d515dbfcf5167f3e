// tfjs PadV2: constant padding. Args: x, out, shape[r], before[r], outShape[r], constant.
#include <algorithm>

#include "copy_common.h"

RETORT_KERNEL(PadV2) {
  auto shape = args.dims(2), before = args.dims(3), oshape = args.dims(4);
  const float value = float(args.f64(5));
  if (before.size() != shape.size() || oshape.size() != shape.size())
    throw retort::ArgError("before and outShape must have the rank of the shape");
  size_t in = 1, out = 1;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] < 0 || oshape[i] < 0) throw retort::ArgError("negative size at dim " + std::to_string(i));
    in *= size_t(shape[i]);
    out *= size_t(oshape[i]);
  }
  float* y = args.f32(1, out);
  // The pooled output buffer is dirty: fill it all, then copy the interior.
  std::fill(y, y + out, value);
  retort::box_copy(args.f32(0, in), shape, std::vector<int64_t>(shape.size(), 0), y, oshape, before, shape);
}
