// tfjs _FusedMatMul (a @ b + bias, then linear or relu) as one oneDNN matmul with bias and a relu
// post-op. Args: a, b, bias (Float32Array, empty when absent), out, geometry[10], relu (0/1).
//
// Registered by hand rather than with RETORT_KERNEL: the JS-visible name must be the tfjs kernel id
// "_FusedMatMul", and C++ reserves identifiers that start with an underscore and a capital letter,
// which is what the macro would paste together from it.
#include "matmul_common.h"

static void fused_matmul(const retort::Args& args) {
  auto g = retort::MatMulGeom::from(args, 4);
  const bool relu = args.count(5, "relu", 0, 1) != 0;
  // Without a bias the array must be empty (bias_size() is 0 then), and oneDNN is given none.
  const float* bias = args.in(2, g.bias_size(), "bias");
  retort::matmul_run(g, args.in(0, g.a_size(), "a"), args.in(1, g.b_size(), "b"), g.has_bias() ? bias : nullptr,
                     relu, args.out(3, g.out_size(), "out"));
}

static napi_value fused_matmul_entry(napi_env env, napi_callback_info info) {
  try {
    retort::Args args(env, info);
    fused_matmul(args);
  } catch (const dnnl::error& e) {
    napi_throw_error(env, nullptr, (std::string("_FusedMatMul: oneDNN: ") + e.what()).c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, (std::string("_FusedMatMul: ") + e.what()).c_str());
  } catch (...) {
    napi_throw_error(env, nullptr, "_FusedMatMul: unknown native error");
  }
  return retort::undefined(env);
}

static retort::Registrar fused_matmul_registrar("_FusedMatMul", fused_matmul_entry);
