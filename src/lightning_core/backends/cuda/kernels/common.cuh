// Shared device helpers for Lightning Core kernels (NVRTC and nvcc, no system headers).
//
// - lc_half: float16 storage (2 bytes). Conversions go through PTX cvt so no cuda_fp16.h is
//   needed; arithmetic on half data is done in float (Acc<lc_half> is float).
// - Pack<S>: 16 bytes of S, 16-byte aligned, so a load/store is one 128-bit instruction.
// - lc_warp_sum: butterfly reduction over a full warp.
// - Math overloads for float and double; no --use_fast_math anywhere (accuracy first).
#pragma once

struct lc_half {
    unsigned short bits;
};

template <typename S>
struct Acc {
    typedef S type;
};
template <>
struct Acc<lc_half> {
    typedef float type;
};

template <typename S>
struct alignas(16) Pack {
    S v[16 / sizeof(S)];
};

__device__ __forceinline__ float lc_to_acc(float x) { return x; }
__device__ __forceinline__ double lc_to_acc(double x) { return x; }
__device__ __forceinline__ float lc_to_acc(lc_half x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}

template <typename S>
__device__ __forceinline__ S lc_from_acc(typename Acc<S>::type x) {
    return x;
}
template <>
__device__ __forceinline__ lc_half lc_from_acc<lc_half>(float x) {
    lc_half h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(x));
    return h;
}

__device__ __forceinline__ float lc_exp(float x) { return expf(x); }
__device__ __forceinline__ double lc_exp(double x) { return exp(x); }
__device__ __forceinline__ float lc_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double lc_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float lc_erf(float x) { return erff(x); }
__device__ __forceinline__ double lc_erf(double x) { return erf(x); }
__device__ __forceinline__ float lc_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double lc_sqrt(double x) { return sqrt(x); }

// -inf without math.h macros (NVRTC has no INFINITY).
template <typename C>
__device__ __forceinline__ C lc_neg_inf();
template <>
__device__ __forceinline__ float lc_neg_inf<float>() { return __int_as_float(0xff800000); }
template <>
__device__ __forceinline__ double lc_neg_inf<double>() {
    return __longlong_as_double(0xfff0000000000000ULL);
}

template <typename C>
__device__ __forceinline__ C lc_warp_sum(C v) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// Activation codes shared by elementwise.cu (unary ops and the linear epilogue):
// 0 none, 1 relu, 2 gelu (tanh form), 3 gelu (erf form).
template <int ACT, typename C>
__device__ __forceinline__ C lc_activate(C x) {
    if constexpr (ACT == 1) {
        // x < 0 ? 0 : x keeps NaN, like NumPy's maximum(x, 0).
        return x < C(0) ? C(0) : x;
    } else if constexpr (ACT == 2) {
        const C k0 = C(0.7978845608028654);  // sqrt(2 / pi)
        const C k1 = C(0.044715);
        return C(0.5) * x * (C(1) + lc_tanh(k0 * (x + k1 * x * x * x)));
    } else if constexpr (ACT == 3) {
        return C(0.5) * x * (C(1) + lc_erf(x * C(0.7071067811865476)));  // x / sqrt(2)
    } else {
        return x;
    }
}
