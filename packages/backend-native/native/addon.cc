// Entry point of the addon: creates the oneDNN engine, sets the OpenMP thread count and exposes every
// kernel that registered itself with RETORT_KERNEL (one .cc file per tfjs kernel id).
#include <omp.h>

#include <cstdlib>

#include "common.h"

namespace retort {

std::vector<KernelEntry>& kernel_table() {
  static std::vector<KernelEntry> table;
  return table;
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}
dnnl::stream& cpu_stream() {
  static dnnl::stream s(cpu_engine());
  return s;
}

std::string key_of(std::initializer_list<int64_t> parts) {
  std::string k;
  for (auto p : parts) {
    k += std::to_string(p);
    k += ',';
  }
  return k;
}
std::string key_of(const std::vector<int64_t>& parts) {
  std::string k;
  for (auto p : parts) {
    k += std::to_string(p);
    k += ',';
  }
  return k;
}

float* scratch(int slot, size_t n) {
  static std::vector<std::vector<float>> slots(8);
  if (slot < 0 || slot >= 8) throw ArgError("scratch slot out of range");
  auto& v = slots[slot];
  if (v.size() < n) v.resize(n);
  return v.data();
}

int num_threads() { return omp_get_max_threads(); }

void relu_inplace(float* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) y[i] = y[i] < 0.f ? 0.f : y[i];
}

}  // namespace retort

static napi_value SetNumThreads(napi_env env, napi_callback_info info) {
  try {
    retort::Args args(env, info);
    const int n = static_cast<int>(args.count(0, "threads", 0, 4096));
    if (n > 0) omp_set_num_threads(n);
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
  }
  napi_value r;
  napi_create_int32(env, omp_get_max_threads(), &r);
  return r;
}

#ifndef RETORT_ISA
#define RETORT_ISA "generic"
#endif

// The level this addon was compiled for (see the Makefile), and whether the CPU has it. binding.ts
// picks the file from the CPU's flags; this second check makes a hand-picked file (RETORT_ADDON_PATH)
// fail with an error instead of SIGILL later. Nothing above this point runs level-specific code:
// the only static initializers are the kernel registrations (a vector push per kernel).
static bool cpu_has_isa() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const char* isa = RETORT_ISA;
  if (std::string(isa) == "x86-64-v4") return __builtin_cpu_supports("x86-64-v4");
  if (std::string(isa) == "x86-64-v3") return __builtin_cpu_supports("x86-64-v3");
  if (std::string(isa) == "x86-64-v2") return __builtin_cpu_supports("x86-64-v2");
#endif
  return true;
}

static napi_value Init(napi_env env, napi_value exports) {
  if (!cpu_has_isa()) {
    napi_throw_error(env, nullptr, "retort_native: built for " RETORT_ISA ", which this CPU does not support");
    return nullptr;
  }
  napi_value fn;
  for (const auto& k : retort::kernel_table()) {
    napi_create_function(env, k.name, NAPI_AUTO_LENGTH, k.fn, nullptr, &fn);
    napi_set_named_property(env, exports, k.name, fn);
  }
  napi_create_function(env, "setNumThreads", NAPI_AUTO_LENGTH, SetNumThreads, nullptr, &fn);
  napi_set_named_property(env, exports, "setNumThreads", fn);
  napi_value v;
  napi_create_string_utf8(env, "oneDNN 2.6", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "engine", v);
  napi_create_string_utf8(env, RETORT_ISA, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "isa", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
