// tfjs AvgPoolGrad (NHWC, 2-D) on oneDNN's pooling backward. Args: dy, dx, geometry[14].
// tfjs cpu's gradient spreads every dy over its window with the constant factor 1 / (KH * KW), even
// where the forward divided by fewer cells ('same' padding at the borders). That is
// pooling_avg_include_padding, not the forward's exclude_padding; parity with tfjs wins over
// self-consistency here, because the backend must compute what cpu computes.
#include "pool_common.h"

namespace {
using namespace dnnl;

struct Entry {
  pooling_backward::primitive_desc pd;
  pooling_backward prim;
};

}  // namespace

RETORT_KERNEL(AvgPoolGrad) {
  static retort::PrimitiveCache<Entry> cache;
  auto g = retort::PoolGeom::from(args, 2);
  // Arrays first: no primitive is built for a geometry the buffers do not match.
  const float* dy = args.in(0, g.dst_size(), "dy");
  float* dx = args.out(1, g.src_size(), "dx");
  auto& e = cache.get(g.key(), [&] {
    const auto alg = algorithm::pooling_avg_include_padding;
    auto hint = retort::pool_fwd_pd(g, alg, prop_kind::forward_training);
    pooling_backward::desc d(alg, g.src_md(), g.dst_md(), {g.sh, g.sw}, {g.kh, g.kw}, {g.pt, g.pl}, {g.pb, g.pr});
    pooling_backward::primitive_desc pd(d, retort::cpu_engine(), hint);
    return Entry{pd, pooling_backward(pd)};
  });
  auto& eng = retort::cpu_engine();
  auto& s = retort::cpu_stream();
  memory ddst(e.pd.diff_dst_desc(), eng, const_cast<float*>(dy));
  memory dsrc(e.pd.diff_src_desc(), eng, dx);
  e.prim.execute(s, {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_SRC, dsrc}});
  s.wait();
}
