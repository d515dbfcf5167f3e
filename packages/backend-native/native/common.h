// Shared glue for the native kernels: argument parsing for N-API, the oneDNN engine/stream, a
// primitive cache, and the self-registration table that addon.cc walks. Every kernel file includes
// this and registers itself with RETORT_KERNEL(name, fn), so adding a kernel never edits a list here.
#pragma once
#include <node_api.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace retort {

// ---- registration ---------------------------------------------------------------------------
using KernelFn = napi_value (*)(napi_env, napi_callback_info);
struct KernelEntry {
  const char* name;
  KernelFn fn;
};
std::vector<KernelEntry>& kernel_table();
struct Registrar {
  Registrar(const char* name, KernelFn fn) { kernel_table().push_back({name, fn}); }
};

// Thrown by argument helpers; converted to a JS Error by the RETORT_KERNEL wrapper.
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- arguments ------------------------------------------------------------------------------
// Positional arguments of one call. Float32Array arguments give raw pointers into JS storage:
// inputs are read only, outputs are arrays the JS side allocated (from its pool) for this call.
class Args {
 public:
  Args(napi_env env, napi_callback_info info) : env_(env) {
    size_t argc = 32;
    argv_.resize(argc);
    if (napi_get_cb_info(env, info, &argc, argv_.data(), nullptr, nullptr) != napi_ok)
      throw ArgError("cannot read arguments");
    argv_.resize(argc);
  }
  size_t size() const { return argv_.size(); }

  float* f32(size_t i, size_t expected_len = SIZE_MAX) const {
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    napi_value ab;
    size_t off = 0;
    if (i >= argv_.size() || napi_get_typedarray_info(env_, argv_[i], &type, &len, &data, &ab, &off) != napi_ok ||
        type != napi_float32_array)
      throw ArgError("argument " + std::to_string(i) + " must be a Float32Array");
    if (expected_len != SIZE_MAX && len != expected_len)
      throw ArgError("argument " + std::to_string(i) + " has " + std::to_string(len) + " elements, expected " +
                     std::to_string(expected_len));
    return static_cast<float*>(data);
  }
  int32_t* i32(size_t i, size_t expected_len = SIZE_MAX) const {
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    napi_value ab;
    size_t off = 0;
    if (i >= argv_.size() || napi_get_typedarray_info(env_, argv_[i], &type, &len, &data, &ab, &off) != napi_ok ||
        type != napi_int32_array)
      throw ArgError("argument " + std::to_string(i) + " must be an Int32Array");
    if (expected_len != SIZE_MAX && len != expected_len)
      throw ArgError("argument " + std::to_string(i) + " has wrong length");
    return static_cast<int32_t*>(data);
  }
  size_t length(size_t i) const {
    napi_typedarray_type type;
    size_t len = 0;
    void* data = nullptr;
    napi_value ab;
    size_t off = 0;
    if (i >= argv_.size() || napi_get_typedarray_info(env_, argv_[i], &type, &len, &data, &ab, &off) != napi_ok)
      throw ArgError("argument " + std::to_string(i) + " must be a typed array");
    return len;
  }
  int64_t i64(size_t i) const {
    int64_t v = 0;
    if (i >= argv_.size() || napi_get_value_int64(env_, argv_[i], &v) != napi_ok)
      throw ArgError("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  double f64(size_t i) const {
    double v = 0;
    if (i >= argv_.size() || napi_get_value_double(env_, argv_[i], &v) != napi_ok)
      throw ArgError("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  // Int32Array of dims -> vector<int64_t>
  std::vector<int64_t> dims(size_t i) const {
    size_t n = length(i);
    const int32_t* p = i32(i);
    return std::vector<int64_t>(p, p + n);
  }
  napi_env env() const { return env_; }

 private:
  napi_env env_;
  std::vector<napi_value> argv_;
};

napi_value undefined(napi_env env);

// ---- oneDNN ---------------------------------------------------------------------------------
dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();

// Primitive cache keyed by a string built from shapes and attributes. oneDNN primitive creation
// (JIT code generation) costs 0.1-10 ms, far more than the small ops it runs, so every kernel keeps
// its primitives here. Bounded so that a shape-changing workload cannot grow it without limit.
template <typename T>
class PrimitiveCache {
 public:
  T& get(const std::string& key, const std::function<T()>& make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) return *it->second;
    if (map_.size() >= kMax) map_.clear();
    auto res = map_.emplace(key, std::make_unique<T>(make()));
    return *res.first->second;
  }

 private:
  static constexpr size_t kMax = 512;
  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<T>> map_;
};

// Key builder: key({a,b,c}) -> "a,b,c,"
std::string key_of(std::initializer_list<int64_t> parts);
std::string key_of(const std::vector<int64_t>& parts);

// Scratch buffers reused across calls (reorders, workspaces): fresh memory page-faults on first
// touch, which costs more than many kernels themselves (engine-notes: 90 ms per 33 MB).
float* scratch(int slot, size_t n_floats);

int num_threads();

}  // namespace retort

// Defines `napi_value name(napi_env, napi_callback_info)` that runs `body(Args&)` and converts
// exceptions to JS errors, and registers it under `name`.
#define RETORT_KERNEL(NAME)                                                                 \
  static void NAME##_impl(const retort::Args& args);                                        \
  static napi_value NAME##_entry(napi_env env, napi_callback_info info) {                   \
    try {                                                                                   \
      retort::Args args(env, info);                                                         \
      NAME##_impl(args);                                                                    \
    } catch (const dnnl::error& e) {                                                        \
      napi_throw_error(env, nullptr, (std::string(#NAME ": oneDNN: ") + e.what()).c_str()); \
    } catch (const std::exception& e) {                                                     \
      napi_throw_error(env, nullptr, (std::string(#NAME ": ") + e.what()).c_str());         \
    }                                                                                       \
    return retort::undefined(env);                                                          \
  }                                                                                         \
  static retort::Registrar NAME##_registrar(#NAME, NAME##_entry);                           \
  static void NAME##_impl(const retort::Args& args)
