// Elementwise kernels: binary arithmetic, unary activations, and the linear epilogue.
//
// Variants (template parameters; the Python side lists the instantiations it compiles):
//   lc_binary<S, OP, VEC>   out = a OP b; OP 0 add, 1 sub, 2 mul, 3 div.
//   lc_unary<S, ACT, VEC>   out = act(x); ACT 1 relu, 2 gelu tanh, 3 gelu erf (common.cuh).
//   lc_bias_act<S, ACT, BIAS, VEC>  in place on a [rows, cols] GEMM result:
//                           out = act(out + bias[col]).
// S is float, double or lc_half (computed in float). VEC=true moves 16 bytes per load and
// store (float4 / double2 / 8 halves) and needs every pointer 16-byte aligned (and, for
// lc_bias_act, cols a multiple of the pack width); the host picks VEC=false otherwise, e.g.
// for views that start mid-allocation. All kernels are grid-stride loops: any grid size is
// correct, and the host sizes the grid from the SM count (one full wave at most). lc_binary and
// lc_unary may run in place (out == a, b or x, as the op modules allow), so their pointers are
// not __restrict__: each element is read and written by the same thread.
#include "common.cuh"

// 16-byte packs per thread per chunk of lc_binary / lc_unary (the host sizes their grids
// with the same number: elementwise.py's _MAP_PACKS).
#ifndef LC_MAP_PACKS
#define LC_MAP_PACKS 1
#endif

template <int OP, typename C>
__device__ __forceinline__ C lc_binop(C a, C b) {
    if constexpr (OP == 0) {
        return a + b;
    } else if constexpr (OP == 1) {
        return a - b;
    } else if constexpr (OP == 2) {
        return a * b;
    } else {
        return a / b;
    }
}

// The operation of lc_binary / lc_unary on computed (Acc) values; unary ignores its second.
template <int OP>
struct LcBinary {
    template <typename C>
    __device__ __forceinline__ C operator()(C a, C b) const { return lc_binop<OP>(a, b); }
};
template <int ACT>
struct LcUnary {
    template <typename C>
    __device__ __forceinline__ C operator()(C a, C) const { return lc_activate<ACT>(a); }
};

// out[i] = f(a[i], b[i]) (ARITY 2) or f(a[i], _) (ARITY 1, b unread) over a grid-stride loop:
// 16-byte packs first when VEC, then the scalar tail (all of it when not VEC).
template <typename S, bool VEC, int ARITY, typename F>
__device__ __forceinline__ void lc_map(const S* a, const S* b, S* out, long long n, F f) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    long long done = 0;
    if constexpr (VEC) {
        // Each block takes chunks of LC_MAP_PACKS * blockDim packs, each thread LC_MAP_PACKS of
        // them a block apart (coalesced): all its loads are issued before the first store, so
        // a thread keeps that many 16-byte reads per input in flight.
        constexpr int N = 16 / sizeof(S);
        const long long nvec = n / N;
        const Pack<S>* av = reinterpret_cast<const Pack<S>*>(a);
        const Pack<S>* bv = reinterpret_cast<const Pack<S>*>(b);
        Pack<S>* ov = reinterpret_cast<Pack<S>*>(out);
        const long long chunk = (long long)LC_MAP_PACKS * blockDim.x;
        for (long long base = (long long)blockIdx.x * chunk + threadIdx.x; base < nvec;
             base += (long long)gridDim.x * chunk) {
            Pack<S> pa[LC_MAP_PACKS], pb[LC_MAP_PACKS];
#pragma unroll
            for (int u = 0; u < LC_MAP_PACKS; ++u) {
                const long long i = base + (long long)u * blockDim.x;
                if (i < nvec) {
                    pa[u] = av[i];
                    if constexpr (ARITY == 2) pb[u] = bv[i];
                }
            }
#pragma unroll
            for (int u = 0; u < LC_MAP_PACKS; ++u) {
                const long long i = base + (long long)u * blockDim.x;
                if (i < nvec) {
                    Pack<S> po;
#pragma unroll
                    for (int j = 0; j < N; ++j) {
                        const typename Acc<S>::type x = lc_to_acc(pa[u].v[j]);
                        po.v[j] = lc_from_acc<S>(f(x, ARITY == 2 ? lc_to_acc(pb[u].v[j]) : x));
                    }
                    ov[i] = po;
                }
            }
        }
        done = nvec * N;
    }
    for (long long i = done + tid; i < n; i += stride) {
        const typename Acc<S>::type x = lc_to_acc(a[i]);
        out[i] = lc_from_acc<S>(f(x, ARITY == 2 ? lc_to_acc(b[i]) : x));
    }
}

template <typename S, int OP, bool VEC>
__global__ void lc_binary(const S* a, const S* b, S* out, long long n) {
    lc_map<S, VEC, 2>(a, b, out, n, LcBinary<OP>());
}

template <typename S, int ACT, bool VEC>
__global__ void lc_unary(const S* x, S* out, long long n) {
    lc_map<S, VEC, 1>(x, x, out, n, LcUnary<ACT>());
}

template <typename S, int ACT, bool BIAS>
__device__ __forceinline__ S lc_epilogue(S v, const S* __restrict__ bias, long long col) {
    typename Acc<S>::type acc = lc_to_acc(v);
    if constexpr (BIAS) acc += lc_to_acc(bias[col]);
    return lc_from_acc<S>(lc_activate<ACT>(acc));
}

template <typename S, int ACT, bool BIAS, bool VEC>
__global__ void lc_bias_act(S* __restrict__ out, const S* __restrict__ bias, long long n,
                            long long cols) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    if constexpr (VEC) {
        // cols % N == 0, so a pack never straddles two rows.
        constexpr int N = 16 / sizeof(S);
        const long long nvec = n / N;
        const long long cvec = cols / N;
        Pack<S>* ov = reinterpret_cast<Pack<S>*>(out);
        const Pack<S>* bv = reinterpret_cast<const Pack<S>*>(bias);
        for (long long i = tid; i < nvec; i += stride) {
            Pack<S> po = ov[i];
            Pack<S> pb;
            if constexpr (BIAS) pb = bv[i % cvec];
#pragma unroll
            for (int j = 0; j < N; ++j) {
                typename Acc<S>::type acc = lc_to_acc(po.v[j]);
                if constexpr (BIAS) acc += lc_to_acc(pb.v[j]);
                po.v[j] = lc_from_acc<S>(lc_activate<ACT>(acc));
            }
            ov[i] = po;
        }
    } else {
        for (long long i = tid; i < n; i += stride) {
            out[i] = lc_epilogue<S, ACT, BIAS>(out[i], bias, BIAS ? i % cols : 0);
        }
    }
}
