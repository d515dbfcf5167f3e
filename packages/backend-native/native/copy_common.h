// Strided copies for the data-movement kernels (Slice, PadV2, Tile). tfjs's cpu versions walk
// element by element through TensorBuffer index arithmetic; in a ResNet training step the Slice
// that is PadV2's gradient alone took 4.6 s in JS. Here rows of the innermost dimension are copied
// with memcpy, rows split across threads.
#pragma once
#include <cstring>

#include "common.h"

namespace retort {

constexpr int kMaxCopyRank = 6;

// Copies the box `box` from src (shape sshape, starting at sstart) into dst (shape dshape, starting
// at dstart). All vectors have the same rank r (1..6).
void box_copy(const float* src, const std::vector<int64_t>& sshape, const std::vector<int64_t>& sstart, float* dst,
              const std::vector<int64_t>& dshape, const std::vector<int64_t>& dstart, const std::vector<int64_t>& box);

}  // namespace retort
