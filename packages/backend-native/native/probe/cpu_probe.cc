// A tiny addon, built for the x86-64 baseline (no -march), that asks the CPU itself (CPUID, through
// GCC's __builtin_cpu_supports) which x86-64 level it runs and whether it has VNNI. The loader
// uses it before choosing the kernel addon: /proc/cpuinfo can omit flags the CPU has (seen here:
// a VM whose kernel lists no `abm`, i.e. LZCNT, on a Zen 5 that runs x86-64-v4 code).
#include <node_api.h>

static napi_value Init(napi_env env, napi_value exports) {
  const char* level = "";
  bool vnni = false;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v2")) level = "x86-64-v2";
  if (__builtin_cpu_supports("x86-64-v3")) level = "x86-64-v3";
  if (__builtin_cpu_supports("x86-64-v4")) level = "x86-64-v4";
  vnni = __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
#endif
  napi_value v;
  napi_create_string_utf8(env, level, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "level", v);
  napi_get_boolean(env, vnni, &v);
  napi_set_named_property(env, exports, "vnni", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
