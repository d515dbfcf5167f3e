// Normalisation of reductions and the strided/tiled transpose that Transpose and the non-adjacent
// reductions share (see reduce_common.h).
#include "reduce_common.h"

#include <cstring>
#ifdef __AVX__
#include <immintrin.h>
#endif

namespace retort {

// Below this much work (elements of a streaming reduction) a loop runs on the calling thread: waking
// passive OpenMP workers costs ~15-20 us here, while one core sums 2^18 floats in ~25 us.
static constexpr int64_t kSerialBelow = int64_t(1) << 18;

int threads_for(int64_t work) { return work < kSerialBelow ? 1 : num_threads(); }

ReducePlan plan_reduce(const std::vector<int64_t>& dims, const std::vector<int64_t>& axes) {
  const int64_t rank = int64_t(dims.size());
  std::vector<bool> reduced(dims.size(), false);
  for (auto a : axes) {
    in_range(a, 0, rank - 1, "axis");
    if (reduced[size_t(a)]) throw ArgError("axis " + std::to_string(a) + " is repeated");
    reduced[size_t(a)] = true;
  }
  // Size-1 dims change no index; neighbours of the same kind index memory as one dim.
  std::vector<int64_t> g;
  std::vector<bool> g_red;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    if (!g.empty() && g_red.back() == reduced[i]) {
      g.back() *= dims[i];
    } else {
      g.push_back(dims[i]);
      g_red.push_back(reduced[i]);
    }
  }
  ReducePlan p;
  int64_t n_red_groups = 0;
  for (bool r : g_red) n_red_groups += r ? 1 : 0;
  if (n_red_groups <= 1) {
    // Kept and reduced groups alternate, so this is [], [k], [r], [k, r], [r, k] or [k, r, k].
    size_t j = 0;
    while (j < g.size() && !g_red[j]) p.outer *= g[j++];
    if (j < g.size()) p.r = g[j++];
    while (j < g.size()) p.inner *= g[j++];
    return p;
  }
  for (size_t i = 0; i < g.size(); ++i)
    if (!g_red[i]) p.perm.push_back(int64_t(i));
  for (size_t i = 0; i < g.size(); ++i)
    if (g_red[i]) p.perm.push_back(int64_t(i));
  p.dims = g;
  for (size_t i = 0; i < g.size(); ++i) (g_red[i] ? p.r : p.outer) *= g[i];
  return p;
}

// Drops size-1 dims and merges input dims that stay neighbours in the output, so [2048, 512] with
// perm [1, 0] stays 2-D and [N, H, W, C] with perm [0, 3, 1, 2] becomes [N, H*W, C] -> [N, C, H*W].
static void simplify(const std::vector<int64_t>& dims0, const std::vector<int64_t>& perm0, std::vector<int64_t>& d,
                     std::vector<int64_t>& p) {
  const size_t rank = dims0.size();
  if (perm0.size() != rank)
    throw ArgError("perm has " + std::to_string(perm0.size()) + " entries for rank " + std::to_string(rank));
  std::vector<bool> seen(rank, false);
  for (auto k : perm0) {
    if (k < 0 || size_t(k) >= rank || seen[size_t(k)])
      throw ArgError("perm is not a permutation of 0.." + std::to_string(rank - 1));
    seen[size_t(k)] = true;
  }
  std::vector<int64_t> index(rank, -1), d1, p1;
  for (size_t i = 0; i < rank; ++i)
    if (dims0[i] != 1) {
      index[i] = int64_t(d1.size());
      d1.push_back(dims0[i]);
    }
  for (auto k : perm0)
    if (index[size_t(k)] >= 0) p1.push_back(index[size_t(k)]);
  std::vector<bool> joins_next(d1.size(), false);
  for (size_t i = 1; i < p1.size(); ++i)
    if (p1[i] == p1[i - 1] + 1) joins_next[size_t(p1[i - 1])] = true;
  std::vector<int64_t> group(d1.size());
  for (size_t k = 0; k < d1.size(); ++k) {
    if (k > 0 && joins_next[k - 1]) {
      d.back() *= d1[k];
    } else {
      d.push_back(d1[k]);
    }
    group[k] = int64_t(d.size()) - 1;
  }
  for (size_t i = 0; i < p1.size(); ++i)
    if (i == 0 || p1[i] != p1[i - 1] + 1) p.push_back(group[size_t(p1[i])]);
}

// dst[j * ds + i] = src[i * ss + j] for i < rows, j < cols: 8x8 blocks in registers (eight
// contiguous loads, eight contiguous stores), scalar copies at the ragged edges.
static void transpose_tile(const float* src, int64_t ss, float* dst, int64_t ds, int64_t rows, int64_t cols) {
  int64_t i = 0;
#ifdef __AVX__
  for (; i + 8 <= rows; i += 8) {
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const float* s0 = src + i * ss + j;
      __m256 r[8], t[8];
      for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(s0 + k * ss);
      for (int k = 0; k < 4; ++k) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
      }
      r[0] = _mm256_shuffle_ps(t[0], t[2], _MM_SHUFFLE(1, 0, 1, 0));
      r[1] = _mm256_shuffle_ps(t[0], t[2], _MM_SHUFFLE(3, 2, 3, 2));
      r[2] = _mm256_shuffle_ps(t[1], t[3], _MM_SHUFFLE(1, 0, 1, 0));
      r[3] = _mm256_shuffle_ps(t[1], t[3], _MM_SHUFFLE(3, 2, 3, 2));
      r[4] = _mm256_shuffle_ps(t[4], t[6], _MM_SHUFFLE(1, 0, 1, 0));
      r[5] = _mm256_shuffle_ps(t[4], t[6], _MM_SHUFFLE(3, 2, 3, 2));
      r[6] = _mm256_shuffle_ps(t[5], t[7], _MM_SHUFFLE(1, 0, 1, 0));
      r[7] = _mm256_shuffle_ps(t[5], t[7], _MM_SHUFFLE(3, 2, 3, 2));
      float* d0 = dst + j * ds + i;
      for (int k = 0; k < 4; ++k) {
        _mm256_storeu_ps(d0 + k * ds, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
        _mm256_storeu_ps(d0 + (k + 4) * ds, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
      }
    }
    for (; j < cols; ++j)
      for (int64_t k = i; k < i + 8; ++k) dst[j * ds + k] = src[k * ss + j];
  }
#endif
  for (; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * ds + i] = src[i * ss + j];
}

void transpose_f32(const float* x, float* y, const std::vector<int64_t>& dims0, const std::vector<int64_t>& perm0) {
  // Nothing to move; and the loops below divide by dims, while merged dims beside a 0 may overflow.
  const int64_t n = prod(dims0, "shape");
  if (n == 0) return;
  std::vector<int64_t> d, p;
  simplify(dims0, perm0, d, p);
  const int nt = threads_for(2 * n);  // moving an element costs about twice summing one
  const size_t rank = d.size();
  if (rank <= 1) {
    constexpr int64_t kPiece = int64_t(1) << 16;
    parallel_for((n + kPiece - 1) / kPiece, nt, [&](int64_t i) {
      std::memcpy(y + i * kPiece, x + i * kPiece, size_t(std::min(kPiece, n - i * kPiece)) * sizeof(float));
    });
    return;
  }
  // Strides of each input dim in the input and in the output.
  std::vector<int64_t> is(rank), os(rank);
  int64_t s = 1;
  for (size_t k = rank; k-- > 0;) {
    is[k] = s;
    s *= d[k];
  }
  s = 1;
  for (size_t i = rank; i-- > 0;) {
    os[size_t(p[i])] = s;
    s *= d[size_t(p[i])];
  }
  // a: contiguous in the input; b: contiguous in the output. Every other dim is an outer loop, taken
  // in output order so that consecutive work items write neighbouring memory.
  const int64_t a = int64_t(rank) - 1, b = p[rank - 1];
  std::vector<int64_t> others;
  for (auto k : p)
    if (k != a && k != b) others.push_back(k);
  const int64_t n_other = n / (a == b ? d[size_t(a)] : d[size_t(a)] * d[size_t(b)]);
  auto base = [&](int64_t t, int64_t& in, int64_t& out) {
    in = out = 0;
    for (size_t j = others.size(); j-- > 0;) {
      const size_t k = size_t(others[j]);
      const int64_t idx = t % d[k];
      t /= d[k];
      in += idx * is[k];
      out += idx * os[k];
    }
  };
  if (a == b) {  // the innermost dim stays innermost: whole rows move
    const int64_t row = d[size_t(a)];
    parallel_for(n_other, nt, [&](int64_t t) {
      int64_t in, out;
      base(t, in, out);
      std::memcpy(y + out, x + in, size_t(row) * sizeof(float));
    });
    return;
  }
  // 2-D tiles between dims a and b: a 32x32 tile's source and destination lines both stay in L1.
  constexpr int64_t kTile = 32;
  const int64_t na = d[size_t(a)], nbd = d[size_t(b)], osa = os[size_t(a)], isb = is[size_t(b)];
  const int64_t ta = (na + kTile - 1) / kTile, tb = (nbd + kTile - 1) / kTile;
  parallel_for(n_other * tb * ta, nt, [&](int64_t t) {
    int64_t in, out;
    base(t / (tb * ta), in, out);
    const int64_t b0 = (t / ta) % tb * kTile, a0 = t % ta * kTile;
    transpose_tile(x + in + b0 * isb + a0, isb, y + out + a0 * osa + b0, osa, std::min(kTile, nbd - b0),
                   std::min(kTile, na - a0));
  });
}

}  // namespace retort
