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

// ---- arguments: the one shared checker -------------------------------------------------------
// Every size, shape, stride, index and axis a kernel uses passes through these before any pointer
// arithmetic: a kernel never trusts the JS side (src/kernels/*.ts checks too, but a stale or
// hand-called addon must still fail with an exception, never read or write memory it does not own).
// Each failure is an ArgError naming the argument ("argument 3 (begin): ..."); the RETORT_KERNEL
// wrapper prefixes the kernel's name.
//
// Sizes are int64 and bounded by kMaxElems, and every product goes through prod(), which checks
// overflow, so offsets computed from checked sizes cannot wrap.
constexpr int64_t kMaxElems = int64_t{1} << 40;
constexpr size_t kMaxRank = 8;

// "argument 3 (begin)"
std::string arg_name(size_t i, const char* name);

// v in [lo, hi] or an ArgError naming `what`.
int64_t in_range(int64_t v, int64_t lo, int64_t hi, const std::string& what);
// Product of sizes, each >= 0, without overflow and at most kMaxElems.
int64_t prod(std::initializer_list<int64_t> sizes, const std::string& what);
int64_t prod(const std::vector<int64_t>& sizes, const std::string& what);
// Every idx[k] in [0, bound).
void indices_in(const int32_t* idx, int64_t n, int64_t bound, const std::string& what);
// An axis in [-rank, rank) normalised to [0, rank).
int64_t axis_of(int64_t axis, int64_t rank, const std::string& what);

// Positional arguments of one call. Float32Array arguments give raw pointers into JS storage:
// inputs are read only; outputs are arrays the JS side allocated (from its pool) for this call and
// must not overlap any other argument (tfjs tensors are immutable: never write into an input).
class Args {
 public:
  Args(napi_env env, napi_callback_info info);
  size_t size() const { return argv_.size(); }

  // Float32Array input of exactly n elements.
  const float* in(size_t i, int64_t n, const char* name) const { return f32_checked(i, n, name); }
  // Float32Array output of exactly n elements, disjoint from every other typed-array argument
  // (except argument `may_alias`, when given: AddN accumulates into its own first input).
  float* out(size_t i, int64_t n, const char* name, size_t may_alias = SIZE_MAX) const;
  // Int32Array of exactly n elements (values unchecked: see indices_in / in_range).
  const int32_t* i32(size_t i, int64_t n, const char* name) const;
  // Element count of a typed array argument (of any type).
  int64_t len(size_t i, const char* name) const;
  // An integral number in [lo, hi].
  int64_t count(size_t i, const char* name, int64_t lo = 0, int64_t hi = kMaxElems) const;
  // Any number (NaN allowed: a pad constant may be NaN).
  double num(size_t i, const char* name) const;
  // A shape: Int32Array of rank in [min_rank, max_rank], each size >= 0, product <= kMaxElems.
  std::vector<int64_t> shape(size_t i, const char* name, size_t min_rank = 0, size_t max_rank = kMaxRank) const;
  // Int32Array of exactly n values, unchecked (geometry the caller validates field by field).
  std::vector<int64_t> ints(size_t i, const char* name, size_t n) const;
  // Int32Array of any length up to kMaxRank * 4, unchecked.
  std::vector<int64_t> ints(size_t i, const char* name) const;
  napi_env env() const { return env_; }

 private:
  struct View {
    napi_typedarray_type type;
    size_t len;     // elements
    char* data;
    size_t bytes;
  };
  bool view(size_t i, View* v) const;
  float* f32_checked(size_t i, int64_t n, const char* name) const;
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

// y = relu(y) in place with tfjs's semantics (x < 0 ? 0 : x): NaN stays NaN and -Inf becomes 0.
// oneDNN's relu post-op maps NaN to 0 and -Inf to NaN (its max/blend), so the fused kernels run
// this pass after the primitive instead; it costs one read and write of the output.
void relu_inplace(float* y, int64_t n);

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
    } catch (...) {                                                                         \
      napi_throw_error(env, nullptr, #NAME ": unknown native error");                       \
    }                                                                                       \
    return retort::undefined(env);                                                          \
  }                                                                                         \
  static retort::Registrar NAME##_registrar(#NAME, NAME##_entry);                           \
  static void NAME##_impl(const retort::Args& args)
