// oneDNN matmul plumbing for BatchMatMul and _FusedMatMul (see matmul_common.h).
#include "matmul_common.h"

namespace retort {
using namespace dnnl;
using tag = memory::format_tag;

namespace {

struct Entry {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};

memory::desc md(const memory::dims& d, tag t) { return memory::desc(d, memory::data_type::f32, t); }

}  // namespace

void matmul_run(const MatMulGeom& g, const float* a, const float* b, const float* bias, bool relu, float* out) {
  static PrimitiveCache<Entry> cache;
  // A weight matrix shared by every batch (a dense layer's kernel under a batched input) makes one
  // tall [batchA * M, K] x [K, N] product: a bigger GEMM than batchA small ones, and the 2-D form is
  // what oneDNN's fastest kernels expect. Only when a's rows are contiguous (no transposeA) and the
  // bias does not vary along batch or M.
  const bool fold = g.batch_b == 1 && !g.ta && g.bias_b <= 1 && g.bias_m <= 1;
  const bool two_d = fold || g.batch() == 1;
  const int64_t rows = fold ? g.batch_a * g.m : g.m;
  const std::string key = key_of({g.batch_a, g.batch_b, g.m, g.n, g.k, g.ta, g.tb, g.bias_b, g.bias_m, g.bias_n});
  auto& e = cache.get(key, [&] {
    memory::desc ad, bd, od, biasd;
    if (two_d) {
      ad = md({rows, g.k}, g.ta ? tag::ba : tag::ab);
      bd = md({g.k, g.n}, g.tb ? tag::ba : tag::ab);
      od = md({rows, g.n}, tag::ab);
      if (g.has_bias()) biasd = md({g.bias_m, g.bias_n}, tag::ab);
    } else {
      ad = md({g.batch_a, g.m, g.k}, g.ta ? tag::acb : tag::abc);
      bd = md({g.batch_b, g.k, g.n}, g.tb ? tag::acb : tag::abc);
      od = md({g.batch(), g.m, g.n}, tag::abc);
      if (g.has_bias()) biasd = md({g.bias_b, g.bias_m, g.bias_n}, tag::abc);
    }
    // relu runs after the primitive (relu_inplace: NaN and -Inf as tfjs treats them), not as a post-op.
    primitive_attr attr;
    auto d = g.has_bias() ? dnnl::matmul::desc(ad, bd, biasd, od) : dnnl::matmul::desc(ad, bd, od);
    dnnl::matmul::primitive_desc pd(d, attr, cpu_engine());
    return Entry{pd, dnnl::matmul(pd)};
  });
  auto& eng = cpu_engine();
  auto& s = cpu_stream();
  std::unordered_map<int, memory> margs{{DNNL_ARG_SRC, memory(e.pd.src_desc(), eng, const_cast<float*>(a))},
                                        {DNNL_ARG_WEIGHTS, memory(e.pd.weights_desc(), eng, const_cast<float*>(b))},
                                        {DNNL_ARG_DST, memory(e.pd.dst_desc(), eng, out)}};
  if (g.has_bias()) margs.emplace(DNNL_ARG_BIAS, memory(e.pd.bias_desc(), eng, const_cast<float*>(bias)));
  e.prim.execute(s, margs);
  s.wait();
  if (relu) relu_inplace(out, e.pd.dst_desc().get_size() / int64_t(sizeof(float)));
}

}  // namespace retort
