#include "copy_common.h"

namespace retort {

static std::vector<int64_t> strides_of(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t i = int64_t(shape.size()) - 2; i >= 0; i--) s[size_t(i)] = s[size_t(i) + 1] * shape[size_t(i) + 1];
  return s;
}

// Every index the copy touches must lie inside both arrays: equal ranks, sizes >= 0, starts >= 0 and
// start + box <= shape per dimension. The callers' element counts (Args::f32 with a length) already
// tie each pointer to its shape, so this makes every memcpy below in bounds.
static void check_box(const std::vector<int64_t>& sshape, const std::vector<int64_t>& sstart,
                      const std::vector<int64_t>& dshape, const std::vector<int64_t>& dstart,
                      const std::vector<int64_t>& box) {
  const size_t r = box.size();
  if (r == 0 || r > size_t(kMaxCopyRank))
    throw ArgError("rank must be 1.." + std::to_string(kMaxCopyRank) + ", got " + std::to_string(r));
  if (sshape.size() != r || sstart.size() != r || dshape.size() != r || dstart.size() != r)
    throw ArgError("shape, start and size arguments must all have rank " + std::to_string(r));
  for (size_t i = 0; i < r; i++) {
    const std::string at = " at dim " + std::to_string(i);
    if (box[i] < 0 || sshape[i] < 0 || dshape[i] < 0) throw ArgError("negative size" + at);
    if (sstart[i] < 0 || sstart[i] > sshape[i] - box[i])
      throw ArgError("source box [" + std::to_string(sstart[i]) + ", +" + std::to_string(box[i]) +
                     ") outside size " + std::to_string(sshape[i]) + at);
    if (dstart[i] < 0 || dstart[i] > dshape[i] - box[i])
      throw ArgError("destination box [" + std::to_string(dstart[i]) + ", +" + std::to_string(box[i]) +
                     ") outside size " + std::to_string(dshape[i]) + at);
  }
}

void box_copy(const float* src, const std::vector<int64_t>& sshape, const std::vector<int64_t>& sstart, float* dst,
              const std::vector<int64_t>& dshape, const std::vector<int64_t>& dstart, const std::vector<int64_t>& box) {
  check_box(sshape, sstart, dshape, dstart, box);
  const size_t r = box.size();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < r; i++) rows *= box[i];
  const int64_t run = box[r - 1];
  if (rows == 0 || run == 0) return;
  const auto ss = strides_of(sshape), ds = strides_of(dshape);
  int64_t sbase = 0, dbase = 0;
  for (size_t i = 0; i < r; i++) {
    sbase += sstart[i] * ss[i];
    dbase += dstart[i] * ds[i];
  }
#pragma omp parallel for schedule(static) if (rows * run > 65536)
  for (int64_t row = 0; row < rows; row++) {
    int64_t rem = row, so = sbase, dof = dbase;
    for (int64_t i = int64_t(r) - 2; i >= 0; i--) {
      const int64_t idx = rem % box[size_t(i)];
      rem /= box[size_t(i)];
      so += idx * ss[size_t(i)];
      dof += idx * ds[size_t(i)];
    }
    std::memcpy(dst + dof, src + so, sizeof(float) * size_t(run));
  }
}

}  // namespace retort
