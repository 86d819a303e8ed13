// 2-D convolution, NCHW input, OIHW weights, zero padding, bias and ReLU fused into the write.
//
// Variants (chosen by backends/cuda/conv.py by multiply-accumulate count; the tuner may
// override):
//   lc_conv2d_direct    one thread per output pixel of a TILE_H x TILE_W block tile (blockDim
//                       = (TILE_W, TILE_H), at most 256 threads), each computing OC_BLOCK output
//                       channels in registers. The input tile (with its halo) and the weights of
//                       a chunk of `cb` input channels are staged in shared memory (under 48 KB,
//                       so no opt-in is needed). 1-D grid: tiles x channel groups x batch.
//                       Picked for small and medium problems: one launch, nothing else.
//   lc_conv2d_im2col    + cuBLAS GEMM + lc_conv2d_bias_act: the lowering for large problems.
//                       im2col writes cols[c*kh*kw, nb*oh*ow] for a group of nb images, the GEMM
//                       (CuPy/cuBLAS, true fp32) forms tmp[oc, nb*oh*ow], and the epilogue adds
//                       the bias, applies ReLU and scatters to NCHW. Grid-stride loops.
//
// Compile-time defines (NVRTC -D):
//   LC_DTYPE   0 float32, 1 float64
//   OC_BLOCK   direct only: output channels per thread (4, 8 or 16)
//   KSIZE      direct only: square kernel size known at compile time (1, 3, 5 or 7), else 0
//              and the kernel size comes from the arguments

#ifndef LC_DTYPE
#define LC_DTYPE 0
#endif
#ifndef OC_BLOCK
#define OC_BLOCK 8
#endif
#ifndef KSIZE
#define KSIZE 0
#endif
#define CV_UNROLL 4

#if LC_DTYPE == 1
typedef double real_t;
#else
typedef float real_t;
#endif

// Four consecutive shared-memory values (16-byte aligned): one LDS.128 for float.
__device__ __forceinline__ void lc_lds4(const real_t* p, real_t (&r)[4]) {
#if LC_DTYPE == 1
    const double2 a = reinterpret_cast<const double2*>(p)[0];
    const double2 b = reinterpret_cast<const double2*>(p)[1];
    r[0] = a.x; r[1] = a.y; r[2] = b.x; r[3] = b.y;
#else
    const float4 t = *reinterpret_cast<const float4*>(p);
    r[0] = t.x; r[1] = t.y; r[2] = t.z; r[3] = t.w;
#endif
}

__device__ __forceinline__ real_t lc_epilogue(real_t acc, const real_t* __restrict__ bias,
                                              int o, int has_bias, int relu) {
    if (has_bias) acc += bias[o];
    return (relu && acc < (real_t)0) ? (real_t)0 : acc;
}

extern "C" __global__ void __launch_bounds__(256)
lc_conv2d_direct(const real_t* __restrict__ x, const real_t* __restrict__ w,
                 const real_t* __restrict__ bias, real_t* __restrict__ out, int c, int h,
                 int wd, int oc, int oh, int ow, int kh_arg, int kw_arg, int sh, int sw, int ph,
                 int pw, int cb, int tiles_w, int tiles, int oc_groups, int has_bias,
                 int relu) {
#if KSIZE > 0
    constexpr int kh = KSIZE;
    constexpr int kw = KSIZE;
#else
    const int kh = kh_arg;
    const int kw = kw_arg;
#endif
    extern __shared__ __align__(16) unsigned char lc_smem_raw[];
    real_t* ws = reinterpret_cast<real_t*>(lc_smem_raw);  // [cb][kh][kw][OC_BLOCK]
    const int khw = kh * kw;
    real_t* xs = ws + cb * khw * OC_BLOCK;                   // [cb][ih_t][iw_t]

    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tw = blockDim.x, th = blockDim.y;
    const int tid = ty * tw + tx;
    const int nthreads = tw * th;
    const int tile = blockIdx.x % tiles;
    const int rest = blockIdx.x / tiles;
    const int og = rest % oc_groups;
    const int ni = rest / oc_groups;
    const int oy0 = (tile / tiles_w) * th;
    const int ox0 = (tile % tiles_w) * tw;
    const int oc0 = og * OC_BLOCK;
    const int ih_t = (th - 1) * sh + kh;
    const int iw_t = (tw - 1) * sw + kw;
    const int iy0 = oy0 * sh - ph;
    const int ix0 = ox0 * sw - pw;

    real_t acc[OC_BLOCK];
#pragma unroll
    for (int o = 0; o < OC_BLOCK; ++o) acc[o] = (real_t)0;

    for (int c0 = 0; c0 < c; c0 += cb) {
        const int cc = min(cb, c - c0);
        __syncthreads();  // the previous chunk is no longer read
        const int wcount = cc * khw;
        for (int idx = tid; idx < OC_BLOCK * wcount; idx += nthreads) {
            // Global order (o, ci, ky, kx) reads contiguous weights; shared order puts the
            // OC_BLOCK channels of one tap side by side for vector loads.
            const int o = idx / wcount;
            const int r = idx - o * wcount;
            const real_t val = (oc0 + o < oc)
                ? w[((size_t)(oc0 + o) * c + c0) * khw + r] : (real_t)0;
            ws[r * OC_BLOCK + o] = val;
        }
        const int plane = ih_t * iw_t;
        const int count = cc * plane;
        const real_t* xn = x + ((size_t)ni * c + c0) * h * wd;
        // Staging is latency-bound on small problems (few blocks): each thread issues
        // CV_UNROLL loads before its first shared-memory store.
        for (int i0 = tid; i0 < count; i0 += nthreads * CV_UNROLL) {
            real_t vals[CV_UNROLL];
#pragma unroll
            for (int u = 0; u < CV_UNROLL; ++u) {
                const int idx = i0 + u * nthreads;
                vals[u] = (real_t)0;
                if (idx < count) {
                    const int ci = idx / plane;
                    const int r = idx - ci * plane;
                    const int iy = r / iw_t;
                    const int gy = iy0 + iy;
                    const int gx = ix0 + (r - iy * iw_t);
                    if (gy >= 0 && gy < h && gx >= 0 && gx < wd) {
                        vals[u] = xn[((size_t)ci * h + gy) * wd + gx];
                    }
                }
            }
#pragma unroll
            for (int u = 0; u < CV_UNROLL; ++u) {
                const int idx = i0 + u * nthreads;
                if (idx < count) xs[idx] = vals[u];
            }
        }
        __syncthreads();

        for (int ci = 0; ci < cc; ++ci) {
            const real_t* xrow = xs + ci * plane + (ty * sh) * iw_t + tx * sw;
            const real_t* wtap = ws + ci * khw * OC_BLOCK;
#pragma unroll
            for (int ky = 0; ky < kh; ++ky) {
#pragma unroll
                for (int kx = 0; kx < kw; ++kx) {
                    const real_t xv = xrow[ky * iw_t + kx];
                    const real_t* wp = wtap + (ky * kw + kx) * OC_BLOCK;
#pragma unroll
                    for (int o4 = 0; o4 < OC_BLOCK; o4 += 4) {
                        real_t wv[4];
                        lc_lds4(wp + o4, wv);
                        acc[o4 + 0] = fma(xv, wv[0], acc[o4 + 0]);
                        acc[o4 + 1] = fma(xv, wv[1], acc[o4 + 1]);
                        acc[o4 + 2] = fma(xv, wv[2], acc[o4 + 2]);
                        acc[o4 + 3] = fma(xv, wv[3], acc[o4 + 3]);
                    }
                }
            }
        }
    }

    const int oy = oy0 + ty;
    const int ox = ox0 + tx;
    if (oy >= oh || ox >= ow) return;
#pragma unroll
    for (int o = 0; o < OC_BLOCK; ++o) {
        if (oc0 + o >= oc) break;
        out[(((size_t)ni * oc + oc0 + o) * oh + oy) * ow + ox] =
            lc_epilogue(acc[o], bias, oc0 + o, has_bias, relu);
    }
}

// cols[(ci*kh + ky)*kw + kx][(n*oh + oy)*ow + ox] = x[n][ci][oy*sh - ph + ky][ox*sw - pw + kx]
// (0 outside the image) for the nb images starting at x. blockIdx.y walks the rows (one tap
// of one channel each), x the columns: 32-bit index math, since a group holds < 2^31 columns.
extern "C" __global__ void __launch_bounds__(256)
lc_conv2d_im2col(const real_t* __restrict__ x, real_t* __restrict__ cols, int nb, int c, int h,
                 int wd, int kh, int kw, int oh, int ow, int sh, int sw, int ph, int pw) {
    const int ohw = oh * ow;
    const int p_count = nb * ohw;
    const int rows = c * kh * kw;
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        const int kx = row % kw;
        const int ky = (row / kw) % kh;
        const int ci = row / (kw * kh);
        real_t* dst = cols + (size_t)row * p_count;
        for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < p_count;
             p += gridDim.x * blockDim.x) {
            const int n = p / ohw;
            const int q = p - n * ohw;
            const int oy = q / ow;
            const int gy = oy * sh - ph + ky;
            const int gx = (q - oy * ow) * sw - pw + kx;
            dst[p] = (gy >= 0 && gy < h && gx >= 0 && gx < wd)
                ? x[(((size_t)n * c + ci) * h + gy) * wd + gx] : (real_t)0;
        }
    }
}

// out[n][o][q] = act(tmp[o][n*ohw + q] + bias[o]) for the nb images starting at out;
// blockIdx.y walks the (n, o) planes, x the pixels of a plane.
extern "C" __global__ void __launch_bounds__(256)
lc_conv2d_bias_act(const real_t* __restrict__ tmp, const real_t* __restrict__ bias,
                   real_t* __restrict__ out, int nb, int oc, int ohw, int has_bias, int relu) {
    for (int plane = blockIdx.y; plane < nb * oc; plane += gridDim.y) {
        const int o = plane % oc;
        const int n = plane / oc;
        const real_t* src = tmp + ((size_t)o * nb + n) * ohw;
        real_t* dst = out + (size_t)plane * ohw;
        for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < ohw;
             q += gridDim.x * blockDim.x) {
            dst[q] = lc_epilogue(src[q], bias, o, has_bias, relu);
        }
    }
}
