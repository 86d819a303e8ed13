// Row reductions over a C-contiguous [rows, cols] array: softmax and layer_norm.
//
// Variants (S is float, double or lc_half; half accumulates in float):
//   lc_softmax_rows_warp<S>     one warp per row; blockDim (32, 4); picked for cols <= 1024.
//   lc_softmax_rows_block<S>    one block per row; blockDim.x a multiple of 32, <= 1024;
//                               picked for cols > 1024.
//   lc_layer_norm_rows_warp<S>  / lc_layer_norm_rows_block<S>: same split.
// Softmax keeps an online (max, sum) pair per thread, so x is read twice (the second read
// mostly hits L1/L2). layer_norm is two-pass in registers-and-cache: mean, then the mean of
// squared deviations (stabler than E[x^2] - mean^2), then the normalised write; weight and
// bias are optional (null pointers). Rows are walked with grid-stride loops, so any grid is
// correct; the host caps it at a few waves of the SM count.
#include "common.cuh"

// Merge (m, s) pairs: s is the sum of exp(x - m). A pair with s == 0 contributes nothing,
// which also keeps rows with -inf entries from turning into NaN (exp(-inf - -inf)).
template <typename C>
__device__ __forceinline__ void lc_online_merge(C& m, C& s, C om, C os) {
    const C nm = m > om ? m : om;
    const C a = s == C(0) ? C(0) : s * lc_exp(m - nm);
    const C b = os == C(0) ? C(0) : os * lc_exp(om - nm);
    m = nm;
    s = a + b;
}

template <typename C>
__device__ __forceinline__ void lc_online_add(C& m, C& s, C x) {
    if (x > m) {
        s = s * lc_exp(m - x) + C(1);
        m = x;
    } else if (x != lc_neg_inf<C>()) {  // NaN takes this branch and spreads
        s += lc_exp(x - m);
    }
}

template <typename C>
__device__ __forceinline__ void lc_warp_merge(C& m, C& s) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const C om = __shfl_xor_sync(0xffffffffu, m, off);
        const C os = __shfl_xor_sync(0xffffffffu, s, off);
        lc_online_merge(m, s, om, os);
    }
}

template <typename S>
__global__ void lc_softmax_rows_warp(const S* __restrict__ x, S* __restrict__ out,
                                     long long rows, int cols) {
    typedef typename Acc<S>::type C;
    const int lane = threadIdx.x;
    for (long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y; r < rows;
         r += (long long)gridDim.x * blockDim.y) {
        const S* xr = x + r * cols;
        S* orow = out + r * cols;
        C m = lc_neg_inf<C>();
        C s = C(0);
        for (int c = lane; c < cols; c += 32) lc_online_add(m, s, lc_to_acc(xr[c]));
        lc_warp_merge(m, s);
        for (int c = lane; c < cols; c += 32) {
            orow[c] = lc_from_acc<S>(lc_exp(lc_to_acc(xr[c]) - m) / s);
        }
    }
}

template <typename S>
__global__ void lc_softmax_rows_block(const S* __restrict__ x, S* __restrict__ out,
                                      long long rows, int cols) {
    typedef typename Acc<S>::type C;
    __shared__ C sm[32];
    __shared__ C ss[32];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const S* xr = x + r * cols;
        S* orow = out + r * cols;
        C m = lc_neg_inf<C>();
        C s = C(0);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) lc_online_add(m, s, lc_to_acc(xr[c]));
        lc_warp_merge(m, s);
        if (lane == 0) {
            sm[warp] = m;
            ss[warp] = s;
        }
        __syncthreads();
        m = lane < warps ? sm[lane] : lc_neg_inf<C>();
        s = lane < warps ? ss[lane] : C(0);
        lc_warp_merge(m, s);  // every warp reduces the partials itself: no second barrier
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            orow[c] = lc_from_acc<S>(lc_exp(lc_to_acc(xr[c]) - m) / s);
        }
        __syncthreads();  // the partials are rewritten for the next row
    }
}

template <typename S, typename C>
__device__ __forceinline__ void lc_norm_write(const S* __restrict__ xr, const S* __restrict__ w,
                                              const S* __restrict__ b, S* __restrict__ orow,
                                              int c, C mean, C rstd) {
    C v = (lc_to_acc(xr[c]) - mean) * rstd;
    if (w != nullptr) v *= lc_to_acc(w[c]);
    if (b != nullptr) v += lc_to_acc(b[c]);
    orow[c] = lc_from_acc<S>(v);
}

template <typename S>
__global__ void lc_layer_norm_rows_warp(const S* __restrict__ x, const S* __restrict__ w,
                                        const S* __restrict__ b, S* __restrict__ out,
                                        long long rows, int cols, double eps) {
    typedef typename Acc<S>::type C;
    const int lane = threadIdx.x;
    for (long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y; r < rows;
         r += (long long)gridDim.x * blockDim.y) {
        const S* xr = x + r * cols;
        C sum = C(0);
        for (int c = lane; c < cols; c += 32) sum += lc_to_acc(xr[c]);
        const C mean = lc_warp_sum(sum) / C(cols);
        C sq = C(0);
        for (int c = lane; c < cols; c += 32) {
            const C d = lc_to_acc(xr[c]) - mean;
            sq += d * d;
        }
        const C rstd = C(1) / lc_sqrt(lc_warp_sum(sq) / C(cols) + C(eps));
        for (int c = lane; c < cols; c += 32) lc_norm_write(xr, w, b, out + r * cols, c, mean, rstd);
    }
}

template <typename C>
__device__ __forceinline__ C lc_block_sum(C v, C* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    v = lc_warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? scratch[lane] : C(0);
    v = lc_warp_sum(v);
    __syncthreads();  // scratch is reused by the next reduction
    return v;
}

template <typename S>
__global__ void lc_layer_norm_rows_block(const S* __restrict__ x, const S* __restrict__ w,
                                         const S* __restrict__ b, S* __restrict__ out,
                                         long long rows, int cols, double eps) {
    typedef typename Acc<S>::type C;
    __shared__ C scratch[32];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const S* xr = x + r * cols;
        C sum = C(0);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += lc_to_acc(xr[c]);
        const C mean = lc_block_sum(sum, scratch) / C(cols);
        C sq = C(0);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const C d = lc_to_acc(xr[c]) - mean;
            sq += d * d;
        }
        const C rstd = C(1) / lc_sqrt(lc_block_sum(sq, scratch) / C(cols) + C(eps));
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            lc_norm_write(xr, w, b, out + r * cols, c, mean, rstd);
        }
    }
}
