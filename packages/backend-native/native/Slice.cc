// tfjs Slice: out = x[begin : begin + size] per dimension. Args: x, out, shape[r], begin[r], size[r].
#include "copy_common.h"

RETORT_KERNEL(Slice) {
  auto shape = args.dims(2), begin = args.dims(3), size = args.dims(4);
  if (begin.size() != shape.size() || size.size() != shape.size())
    throw retort::ArgError("begin and size must have the rank of the shape");
  size_t in = 1, out = 1;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] < 0 || size[i] < 0) throw retort::ArgError("negative size at dim " + std::to_string(i));
    in *= size_t(shape[i]);
    out *= size_t(size[i]);
  }
  retort::box_copy(args.f32(0, in), shape, begin, args.f32(1, out), size, std::vector<int64_t>(size.size(), 0), size);
}
