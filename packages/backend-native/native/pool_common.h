// 2-D pooling geometry and the oneDNN plumbing shared by MaxPool, AvgPool and AvgPoolGrad (MaxPoolGrad
// is a hand-written OpenMP loop, see MaxPoolGrad.cc). Activations stay NHWC in tfjs memory: oneDNN reads
// and writes them in place, so no reorder is ever needed.
#pragma once
#include "common.h"

namespace retort {

struct PoolGeom {
  int64_t n, h, w, c;      // input
  int64_t kh, kw;          // window
  int64_t oh, ow;          // output spatial size
  int64_t sh, sw;          // strides
  int64_t pt, pl, pb, pr;  // padding (pb, pr as oneDNN needs them, see src/kernels/pool_util.ts)

  // Reads and validates the 14-int geometry array written by src/kernels/pool_util.ts: every size and
  // stride in [1, 2^30], each pad below its window (no window lies wholly in padding, which oneDNN rejects for
  // exclude_padding and which would leave MaxPool's patch an empty window), the output size the one
  // oneDNN derives (OH = (H + padT + padB - KH) / strideH + 1, integer division), and both tensor sizes
  // free of overflow. The callers tie each pointer to src_size/dst_size, so neither oneDNN nor the
  // MaxPool/MaxPoolGrad loops (which index x, dx by clipped windows and dy by (oh, ow)) leave a buffer.
  static PoolGeom from(const Args& a, size_t i) {
    const auto g = a.ints(i, "geometry", 14);
    static const char* names[14] = {"N",       "H",       "W",    "C",    "KH",   "KW",   "OH", "OW",
                                    "strideH", "strideW", "padT", "padL", "padB", "padR"};
    const std::string at = arg_name(i, "geometry") + " ";
    for (size_t k = 0; k < 10; k++) in_range(g[k], 1, int64_t{1} << 30, at + names[k]);
    PoolGeom r{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13]};
    in_range(r.pt, 0, r.kh - 1, at + names[10]);
    in_range(r.pl, 0, r.kw - 1, at + names[11]);
    in_range(r.pb, 0, r.kh - 1, at + names[12]);
    in_range(r.pr, 0, r.kw - 1, at + names[13]);
    // oneDNN computes window bounds in int: padded extents stay far from INT32_MAX (a 2^30 window
    // with 2^30 - 1 pads on both sides passes everything else and dies in oneDNN with SIGFPE).
    in_range(r.h + r.pt + r.pb, 1, int64_t{1} << 30, at + "H + padT + padB");
    in_range(r.w + r.pl + r.pr, 1, int64_t{1} << 30, at + "W + padL + padR");
    const int64_t span_h = r.h + r.pt + r.pb - r.kh, span_w = r.w + r.pl + r.pr - r.kw;
    if (span_h < 0 || span_h / r.sh + 1 != r.oh || span_w < 0 || span_w / r.sw + 1 != r.ow)
      throw ArgError(at + "output " + std::to_string(r.oh) + "x" + std::to_string(r.ow) +
                     " does not follow from input, window, strides and pads");
    r.src_n = prod({r.n, r.h, r.w, r.c}, at + "input");
    r.dst_n = prod({r.n, r.oh, r.ow, r.c}, at + "output");
    return r;
  }
  std::string key() const { return key_of({n, h, w, c, kh, kw, oh, ow, sh, sw, pt, pl, pb, pr}); }
  dnnl::memory::desc src_md() const {
    return dnnl::memory::desc({n, c, h, w}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
  }
  dnnl::memory::desc dst_md() const {
    return dnnl::memory::desc({n, c, oh, ow}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
  }
  int64_t src_n = 0, dst_n = 0;  // element counts, checked by from()
  int64_t src_size() const { return src_n; }
  int64_t dst_size() const { return dst_n; }
};

// Forward pooling without workspace (forward_inference): MaxPoolGrad recomputes the argmax from x
// itself, so nothing has to be kept between the passes.
inline dnnl::pooling_forward::primitive_desc pool_fwd_pd(const PoolGeom& g, dnnl::algorithm alg,
                                                         dnnl::prop_kind pk = dnnl::prop_kind::forward_inference) {
  dnnl::pooling_forward::desc d(pk, alg, g.src_md(), g.dst_md(), {g.sh, g.sw}, {g.kh, g.kw}, {g.pt, g.pl},
                                {g.pb, g.pr});
  return dnnl::pooling_forward::primitive_desc(d, cpu_engine());
}

struct PoolFwdEntry {
  dnnl::pooling_forward::primitive_desc pd;
  dnnl::pooling_forward prim;
};

// y = pool(x) with oneDNN; one cache per algorithm (the caller owns the static cache).
inline void pool_forward(PrimitiveCache<PoolFwdEntry>& cache, const PoolGeom& g, dnnl::algorithm alg,
                         const float* x, float* y) {
  auto& e = cache.get(g.key(), [&] {
    auto pd = pool_fwd_pd(g, alg);
    return PoolFwdEntry{pd, dnnl::pooling_forward(pd)};
  });
  auto& eng = cpu_engine();
  auto& s = cpu_stream();
  dnnl::memory src(e.pd.src_desc(), eng, const_cast<float*>(x));
  dnnl::memory dst(e.pd.dst_desc(), eng, y);
  e.prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  s.wait();
}

}  // namespace retort
