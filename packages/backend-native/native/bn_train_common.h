// Shared helper of RetortBatchNormTrain.cc and RetortBatchNormTrainGrad.cc: per-channel sums over
// the rows of an [rows, C] float array, in double, split over OpenMP threads (each thread sums its
// own block of rows into its own accumulator, then the accumulators are added in thread order, so
// the result does not depend on scheduling).
#pragma once
#include <omp.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace retort {

// For each channel j: s1[j] = sum_r f1(r, j), s2[j] = sum_r f2(r, j). Body(r0, r1, a1, a2) adds the
// rows [r0, r1) into the accumulators a1, a2 (length C each). The callers check c >= 1 and rows * c
// (their array length) within kMaxElems, so acc's size cannot overflow; it is allocated before the
// parallel region, where a bad_alloc could not reach the kernel's exception handler.
template <class Body>
void channel_sums(int64_t rows, int64_t c, double* s1, double* s2, Body body) {
  const int max_t = (rows * c > (int64_t{1} << 15)) ? omp_get_max_threads() : 1;
  std::vector<double> acc(static_cast<size_t>(2 * c * max_t), 0.0);
  int used = 1;
#pragma omp parallel num_threads(max_t) if (max_t > 1)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
#pragma omp single
    used = nt;
    double* a1 = acc.data() + 2 * c * t;
    double* a2 = a1 + c;
    body(rows * t / nt, rows * (t + 1) / nt, a1, a2);
  }
  for (int64_t j = 0; j < c; ++j) {
    s1[j] = 0;
    s2[j] = 0;
  }
  for (int t = 0; t < used; ++t) {
    const double* a1 = acc.data() + 2 * c * t;
    const double* a2 = a1 + c;
    for (int64_t j = 0; j < c; ++j) {
      s1[j] += a1[j];
      s2[j] += a2[j];
    }
  }
}

}  // namespace retort
