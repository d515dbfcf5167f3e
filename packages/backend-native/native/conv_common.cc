// oneDNN convolution plumbing. Activations stay in NHWC (tfjs memory, no copy); weights are declared
// format_tag::any so oneDNN picks its blocked layout (a plain hwio declaration makes it fall back to
// a slow gemm path, engine-notes), and we reorder between tfjs's layout and that one per call.
#include "conv_common.h"

namespace retort {
using namespace dnnl;
using tag = memory::format_tag;

static convolution_forward::desc fwd_desc(const ConvGeom& g, bool bias, prop_kind pk) {
  auto src = md_nhwc(g.src_dims());
  auto dst = md_nhwc(g.dst_dims());
  auto wei = md_any(g.wei_dims());
  if (bias) {
    auto b = md_tag({g.out_channels()}, tag::x);
    return convolution_forward::desc(pk, algorithm::convolution_direct, src, wei, b, dst, g.strides(), g.dilates(),
                                     g.pad_l(), g.pad_r());
  }
  return convolution_forward::desc(pk, algorithm::convolution_direct, src, wei, dst, g.strides(), g.dilates(),
                                   g.pad_l(), g.pad_r());
}

// relu runs after the primitive (relu_inplace: NaN and -Inf as tfjs treats them), not as a post-op.
convolution_forward::primitive_desc conv_fwd_pd(const ConvGeom& g, bool bias, prop_kind pk) {
  return convolution_forward::primitive_desc(fwd_desc(g, bias, pk), cpu_engine());
}

struct FwdEntry {
  convolution_forward::primitive_desc pd;
  convolution_forward prim;
  reorder wei_reorder;  // tfjs layout -> pd.weights_desc(); empty when identical
  bool needs_reorder;
};

void conv_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, bool relu, float* y) {
  static PrimitiveCache<FwdEntry> cache;
  const bool has_bias = bias != nullptr;
  auto& e = cache.get(g.key() + (has_bias ? "b" : ""), [&] {
    // forward_inference: training needs no extra state from the forward conv (no workspace), and the
    // inference variant lets oneDNN pick the same kernels.
    auto pd = conv_fwd_pd(g, has_bias, prop_kind::forward_inference);
    auto user = md_tag(g.wei_dims(), g.wei_user_tag());
    bool need = pd.weights_desc() != user;
    reorder r;
    if (need) r = reorder(memory(user, cpu_engine(), nullptr), memory(pd.weights_desc(), cpu_engine(), nullptr));
    return FwdEntry{pd, convolution_forward(pd), r, need};
  });
  auto& eng = cpu_engine();
  auto& s = cpu_stream();
  memory src(e.pd.src_desc(), eng, const_cast<float*>(x));
  memory dst(e.pd.dst_desc(), eng, y);
  memory wuser(md_tag(g.wei_dims(), g.wei_user_tag()), eng, const_cast<float*>(w));
  memory wei = wuser;
  if (e.needs_reorder) {
    wei = memory(e.pd.weights_desc(), eng, scratch(0, e.pd.weights_desc().get_size() / sizeof(float) + 16));
    e.wei_reorder.execute(s, wuser, wei);
  }
  std::unordered_map<int, memory> margs{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
  if (has_bias) margs.emplace(DNNL_ARG_BIAS, memory(md_tag({g.out_channels()}, tag::x), eng, const_cast<float*>(bias)));
  e.prim.execute(s, margs);
  s.wait();
  if (relu) relu_inplace(y, g.dst_size());
}

struct BwdDataEntry {
  convolution_backward_data::primitive_desc pd;
  convolution_backward_data prim;
  reorder wei_reorder;
  bool needs_reorder;
};

void conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  static PrimitiveCache<BwdDataEntry> cache;
  auto& e = cache.get(g.key(), [&] {
    auto hint = conv_fwd_pd(g, false, prop_kind::forward_training);
    convolution_backward_data::desc d(algorithm::convolution_direct, md_nhwc(g.src_dims()), md_any(g.wei_dims()),
                                      md_nhwc(g.dst_dims()), g.strides(), g.dilates(), g.pad_l(), g.pad_r());
    convolution_backward_data::primitive_desc pd(d, cpu_engine(), hint);
    auto user = md_tag(g.wei_dims(), g.wei_user_tag());
    bool need = pd.weights_desc() != user;
    reorder r;
    if (need) r = reorder(memory(user, cpu_engine(), nullptr), memory(pd.weights_desc(), cpu_engine(), nullptr));
    return BwdDataEntry{pd, convolution_backward_data(pd), r, need};
  });
  auto& eng = cpu_engine();
  auto& s = cpu_stream();
  memory ddst(e.pd.diff_dst_desc(), eng, const_cast<float*>(dy));
  memory dsrc(e.pd.diff_src_desc(), eng, dx);
  memory wuser(md_tag(g.wei_dims(), g.wei_user_tag()), eng, const_cast<float*>(w));
  memory wei = wuser;
  if (e.needs_reorder) {
    wei = memory(e.pd.weights_desc(), eng, scratch(1, e.pd.weights_desc().get_size() / sizeof(float) + 16));
    e.wei_reorder.execute(s, wuser, wei);
  }
  e.prim.execute(s, {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, dsrc}});
  s.wait();
}

struct BwdWeiEntry {
  convolution_backward_weights::primitive_desc pd;
  convolution_backward_weights prim;
  reorder wei_reorder;  // pd.diff_weights_desc() -> tfjs layout
  bool needs_reorder;
};

void conv_backward_weights(const ConvGeom& g, const float* x, const float* dy, float* dw) {
  static PrimitiveCache<BwdWeiEntry> cache;
  auto& e = cache.get(g.key(), [&] {
    auto hint = conv_fwd_pd(g, false, prop_kind::forward_training);
    convolution_backward_weights::desc d(algorithm::convolution_direct, md_nhwc(g.src_dims()), md_any(g.wei_dims()),
                                         md_nhwc(g.dst_dims()), g.strides(), g.dilates(), g.pad_l(), g.pad_r());
    // A scratchpad we own, with slack: oneDNN 2.6's jit_1x1 backward-weights kernel with strides
    // ("reduce to unit stride" copies of src) corrupted the heap past its library-allocated
    // scratchpad on 2 threads (x [1,8,6,1], 1x1 filter, strides [2,1]; found by the kernel fuzzer).
    primitive_attr attr;
    attr.set_scratchpad_mode(scratchpad_mode::user);
    convolution_backward_weights::primitive_desc pd(d, attr, cpu_engine(), hint);
    auto user = md_tag(g.wei_dims(), g.wei_user_tag());
    bool need = pd.diff_weights_desc() != user;
    reorder r;
    if (need) r = reorder(memory(pd.diff_weights_desc(), cpu_engine(), nullptr), memory(user, cpu_engine(), nullptr));
    return BwdWeiEntry{pd, convolution_backward_weights(pd), r, need};
  });
  auto& eng = cpu_engine();
  auto& s = cpu_stream();
  memory src(e.pd.src_desc(), eng, const_cast<float*>(x));
  memory ddst(e.pd.diff_dst_desc(), eng, const_cast<float*>(dy));
  memory wuser(md_tag(g.wei_dims(), g.wei_user_tag()), eng, dw);
  memory dwei = wuser;
  if (e.needs_reorder) dwei = memory(e.pd.diff_weights_desc(), eng, scratch(2, e.pd.diff_weights_desc().get_size() / sizeof(float) + 16));
  const size_t pad_floats = e.pd.scratchpad_desc().get_size() / sizeof(float);
  memory pad(e.pd.scratchpad_desc(), eng, scratch(3, pad_floats + pad_floats / 2 + 4096));
  e.prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_DIFF_WEIGHTS, dwei},
                     {DNNL_ARG_SCRATCHPAD, pad}});
  if (e.needs_reorder) e.wei_reorder.execute(s, dwei, wuser);
  s.wait();
}

}  // namespace retort
