// Convolution geometry shared by Conv2D, FusedConv2D, the two backprops and the depthwise kernels.
// tfjs layout: activations NHWC, filters HWIO ([KH, KW, IC, OC]); depthwise filters [KH, KW, IC, M]
// which oneDNN sees as grouped weights goihw with G = IC, O = M, I = 1 ("hwigo" in memory order).
#pragma once
#include "common.h"

namespace retort {

struct ConvGeom {
  int64_t n, h, w, c;      // input
  int64_t kh, kw, oc;      // filter (oc = output channels; for depthwise: channel multiplier M)
  int64_t oh, ow;          // output spatial size
  int64_t sh, sw, dh, dw;  // strides, dilations (tfjs convention: 1 = dense)
  int64_t pt, pl, pb, pr;  // padding
  bool depthwise;

  // Reads and validates the 17-int geometry array written by src/kernels/conv_util.ts: every size
  // and step >= 1, pads >= 0, the output size the one oneDNN derives (OH = (H + padT + padB - effH)
  // / strideH + 1, integer division), and all three tensor sizes free of overflow. The caller ties
  // each pointer to src_size/wei_size/dst_size, so oneDNN never sees a buffer shorter than it reads.
  static ConvGeom from(const Args& a, size_t i, bool depthwise) {
    const auto g = a.ints(i, "geometry", 17);
    static const char* names[17] = {"N", "H", "W", "C", "KH", "KW", depthwise ? "M" : "OC", "OH", "OW",
                                    "strideH", "strideW", "dilationH", "dilationW", "padT", "padL", "padB", "padR"};
    const std::string at = arg_name(i, "geometry") + " ";
    for (size_t k = 0; k < 17; k++)
      in_range(g[k], k < 13 ? 1 : 0, k < 13 ? (int64_t{1} << 30) : (int64_t{1} << 20), at + names[k]);
    ConvGeom r{g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15], g[16], depthwise};
    const int64_t eff_h = (r.kh - 1) * r.dh + 1, eff_w = (r.kw - 1) * r.dw + 1;
    const int64_t span_h = r.h + r.pt + r.pb - eff_h, span_w = r.w + r.pl + r.pr - eff_w;
    if (span_h < 0 || span_h / r.sh + 1 != r.oh || span_w < 0 || span_w / r.sw + 1 != r.ow)
      throw ArgError(at + "output " + std::to_string(r.oh) + "x" + std::to_string(r.ow) +
                     " does not follow from input, filter, strides, dilations and pads");
    r.src_n = prod({r.n, r.h, r.w, r.c}, at + "input");
    r.wei_n = prod({r.kh, r.kw, r.c, r.oc}, at + "filter");
    r.dst_n = prod({r.n, r.oh, r.ow, depthwise ? r.c : 1, r.oc}, at + "output");
    return r;
  }
  int64_t out_channels() const { return depthwise ? c * oc : oc; }
  std::string key() const {
    return key_of({n, h, w, c, kh, kw, oc, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr, depthwise ? 1 : 0});
  }
  dnnl::memory::dims src_dims() const { return {n, c, h, w}; }
  dnnl::memory::dims dst_dims() const { return {n, out_channels(), oh, ow}; }
  dnnl::memory::dims wei_dims() const {
    if (depthwise) return {c, oc, 1, kh, kw};
    return {oc, c, kh, kw};
  }
  dnnl::memory::format_tag wei_user_tag() const {
    return depthwise ? dnnl::memory::format_tag::hwigo : dnnl::memory::format_tag::hwio;
  }
  dnnl::memory::dims strides() const { return {sh, sw}; }
  dnnl::memory::dims dilates() const { return {dh - 1, dw - 1}; }
  dnnl::memory::dims pad_l() const { return {pt, pl}; }
  dnnl::memory::dims pad_r() const { return {pb, pr}; }
  int64_t src_n = 0, wei_n = 0, dst_n = 0;  // element counts, checked by from()
  int64_t src_size() const { return src_n; }
  int64_t dst_size() const { return dst_n; }
  int64_t wei_size() const { return wei_n; }
};

inline dnnl::memory::desc md_any(const dnnl::memory::dims& d) {
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
}
inline dnnl::memory::desc md_nhwc(const dnnl::memory::dims& d) {
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, dnnl::memory::format_tag::nhwc);
}
inline dnnl::memory::desc md_tag(const dnnl::memory::dims& d, dnnl::memory::format_tag t) {
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, t);
}

// Forward primitive descriptor (also the hint for both backward passes).
dnnl::convolution_forward::primitive_desc conv_fwd_pd(const ConvGeom& g, bool bias,
                                                      dnnl::prop_kind pk = dnnl::prop_kind::forward_training);

// y = conv(x, w) (+ bias) (relu). w in tfjs layout; reordered into oneDNN's preferred layout.
void conv_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, bool relu, float* y);
// dx = conv_backward_data(dy, w)
void conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx);
// dw = conv_backward_weights(x, dy), written in tfjs filter layout.
void conv_backward_weights(const ConvGeom& g, const float* x, const float* dy, float* dw);

}  // namespace retort
