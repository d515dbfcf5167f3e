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

  // Reads the 14-int geometry array written by src/kernels/pool_util.ts.
  static PoolGeom from(const Args& a, size_t i) {
    if (a.length(i) != 14) throw ArgError("pool geometry must have 14 ints");
    const int32_t* g = a.i32(i);
    return PoolGeom{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13]};
  }
  std::string key() const { return key_of({n, h, w, c, kh, kw, oh, ow, sh, sw, pt, pl, pb, pr}); }
  dnnl::memory::desc src_md() const {
    return dnnl::memory::desc({n, c, h, w}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
  }
  dnnl::memory::desc dst_md() const {
    return dnnl::memory::desc({n, c, oh, ow}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
  }
  size_t src_size() const { return size_t(n * h * w * c); }
  size_t dst_size() const { return size_t(n * oh * ow * c); }
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
