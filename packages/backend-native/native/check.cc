// The shared argument checker declared in common.h: the only code that turns N-API values into
// pointers and sizes for the kernels.
#include <cmath>
#include <cstring>

#include "common.h"

namespace retort {

std::string arg_name(size_t i, const char* name) {
  return "argument " + std::to_string(i) + " (" + name + ")";
}

int64_t in_range(int64_t v, int64_t lo, int64_t hi, const std::string& what) {
  if (v < lo || v > hi)
    throw ArgError(what + " is " + std::to_string(v) + ", outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   "]");
  return v;
}

int64_t prod(const int64_t* p, size_t n, const std::string& what) {
  int64_t r = 1;
  for (size_t k = 0; k < n; ++k) {
    if (p[k] < 0) throw ArgError(what + ": dim " + std::to_string(k) + " is negative (" + std::to_string(p[k]) + ")");
    if (__builtin_mul_overflow(r, p[k], &r) || r > kMaxElems)
      throw ArgError(what + ": more than " + std::to_string(kMaxElems) + " elements");
  }
  return r;
}
int64_t prod(std::initializer_list<int64_t> sizes, const std::string& what) {
  return prod(sizes.begin(), sizes.size(), what);
}
int64_t prod(const std::vector<int64_t>& sizes, const std::string& what) {
  return prod(sizes.data(), sizes.size(), what);
}

void indices_in(const int32_t* idx, int64_t n, int64_t bound, const std::string& what) {
  for (int64_t k = 0; k < n; ++k)
    if (idx[k] < 0 || idx[k] >= bound)
      throw ArgError(what + "[" + std::to_string(k) + "] = " + std::to_string(idx[k]) + " outside [0, " +
                     std::to_string(bound) + ")");
}

int64_t axis_of(int64_t axis, int64_t rank, const std::string& what) {
  if (axis < -rank || axis >= rank)
    throw ArgError(what + " is " + std::to_string(axis) + ", outside [" + std::to_string(-rank) + ", " +
                   std::to_string(rank) + ")");
  return axis < 0 ? axis + rank : axis;
}

Args::Args(napi_env env, napi_callback_info info) : env_(env) {
  size_t argc = 32;
  argv_.resize(argc);
  if (napi_get_cb_info(env, info, &argc, argv_.data(), nullptr, nullptr) != napi_ok)
    throw ArgError("cannot read arguments");
  // More than 32 arguments: only the first 32 were read, and a kernel must not guess at the rest.
  if (argc > 32) throw ArgError("at most 32 arguments, got " + std::to_string(argc));
  argv_.resize(argc);
}

bool Args::view(size_t i, View* v) const {
  napi_value ab;
  size_t off = 0;
  void* data = nullptr;
  if (i >= argv_.size()) return false;
  bool is = false;
  if (napi_is_typedarray(env_, argv_[i], &is) != napi_ok || !is) return false;
  if (napi_get_typedarray_info(env_, argv_[i], &v->type, &v->len, &data, &ab, &off) != napi_ok) return false;
  v->data = static_cast<char*>(data);
  size_t el = 1;
  switch (v->type) {
    case napi_int16_array:
    case napi_uint16_array:
      el = 2;
      break;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      el = 4;
      break;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      el = 8;
      break;
    default:
      el = 1;
  }
  v->bytes = v->len * el;
  // A zero-length view may carry a null pointer; give kernels a valid (never dereferenced) one.
  if (v->data == nullptr) {
    static char empty[8];
    v->data = empty;
  }
  return true;
}

float* Args::f32_checked(size_t i, int64_t n, const char* name) const {
  View v;
  if (!view(i, &v) || v.type != napi_float32_array) throw ArgError(arg_name(i, name) + " must be a Float32Array");
  if (n < 0 || v.len != static_cast<size_t>(n))
    throw ArgError(arg_name(i, name) + " has " + std::to_string(v.len) + " elements, expected " + std::to_string(n));
  return reinterpret_cast<float*>(v.data);
}

float* Args::out(size_t i, int64_t n, const char* name, size_t may_alias) const {
  float* p = f32_checked(i, n, name);
  const char* b0 = reinterpret_cast<const char*>(p);
  const char* b1 = b0 + size_t(n) * sizeof(float);
  for (size_t j = 0; j < argv_.size(); ++j) {
    if (j == i || j == may_alias) continue;
    View o;
    if (!view(j, &o) || o.bytes == 0 || n == 0) continue;
    if (b0 < o.data + o.bytes && o.data < b1)
      throw ArgError(arg_name(i, name) + " overlaps argument " + std::to_string(j) + ": outputs must be fresh buffers");
  }
  return p;
}

const int32_t* Args::i32(size_t i, int64_t n, const char* name) const {
  View v;
  if (!view(i, &v) || v.type != napi_int32_array) throw ArgError(arg_name(i, name) + " must be an Int32Array");
  if (n < 0 || v.len != static_cast<size_t>(n))
    throw ArgError(arg_name(i, name) + " has " + std::to_string(v.len) + " elements, expected " + std::to_string(n));
  return reinterpret_cast<const int32_t*>(v.data);
}

int64_t Args::len(size_t i, const char* name) const {
  View v;
  if (!view(i, &v)) throw ArgError(arg_name(i, name) + " must be a typed array");
  return static_cast<int64_t>(v.len);
}

double Args::num(size_t i, const char* name) const {
  double v = 0;
  napi_valuetype t;
  if (i >= argv_.size() || napi_typeof(env_, argv_[i], &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env_, argv_[i], &v) != napi_ok)
    throw ArgError(arg_name(i, name) + " must be a number");
  return v;
}

int64_t Args::count(size_t i, const char* name, int64_t lo, int64_t hi) const {
  const double v = num(i, name);
  if (!std::isfinite(v) || v != std::floor(v) || v < -9.0e15 || v > 9.0e15)
    throw ArgError(arg_name(i, name) + " must be an integer, got " + std::to_string(v));
  return in_range(static_cast<int64_t>(v), lo, hi, arg_name(i, name));
}

std::vector<int64_t> Args::ints(size_t i, const char* name, size_t n) const {
  const int32_t* p = i32(i, static_cast<int64_t>(n), name);
  return std::vector<int64_t>(p, p + n);
}

std::vector<int64_t> Args::ints(size_t i, const char* name) const {
  const int64_t n = len(i, name);
  if (n > int64_t(kMaxRank) * 4) throw ArgError(arg_name(i, name) + " has " + std::to_string(n) + " values, too many");
  return ints(i, name, size_t(n));
}

std::vector<int64_t> Args::shape(size_t i, const char* name, size_t min_rank, size_t max_rank) const {
  const int64_t r = len(i, name);
  if (r < int64_t(min_rank) || r > int64_t(max_rank))
    throw ArgError(arg_name(i, name) + " has rank " + std::to_string(r) + ", expected " + std::to_string(min_rank) +
                   ".." + std::to_string(max_rank));
  auto s = ints(i, name, size_t(r));
  prod(s, arg_name(i, name));
  return s;
}

}  // namespace retort
