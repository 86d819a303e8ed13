// lc_gemm_tiled: C[M, N] = A[M, K] @ B[K, N], row-major float32, true fp32 FMAs.
//
// For small GEMMs, where cuBLAS's tiles leave most SMs idle (a 256^3 product is 4 of its
// 128 x 128 tiles) and its host call costs more than the math. One block of GROUPS warps
// owns a BM x BN tile of C; warp g accumulates the K slice [g * KG, (g + 1) * KG) on its own
// (staging KC-deep chunks of A and B in its shared memory, the next chunk already in flight in
// registers), so the warps never wait on each other until the end, when their partial tiles
// are summed through shared memory. grid = (ceil(N / BN), ceil(M / BM)), block = 32 * GROUPS.
// Lane (ly = lane / 4, lx = lane % 4) holds rows ly + 8 i and columns lx + 4 j (i, j < 4).
// A chunk is stored transposed with a padded row (lanes storing one k column hit distinct
// banks); B chunks as they are. Out-of-range rows, columns and k are zero-filled.
// Dynamic shared memory: GROUPS * KC * (BM + 1 + BN) floats.

#define LC_BM 32
#define LC_BN 16
#define LC_KC 32
#ifndef GROUPS
#define GROUPS 8
#endif
#define LC_AS (LC_KC * (LC_BM + 1))      // one warp's A chunk, transposed and padded
#define LC_WARP_SMEM (LC_AS + LC_KC * LC_BN)
#define LC_A_PER_LANE (LC_BM * LC_KC / 32)
#define LC_B_PER_LANE (LC_KC * LC_BN / 32)

struct lc_chunk {
    float a[LC_A_PER_LANE];
    float b[LC_B_PER_LANE];
};

// Loads chunk [k0, k0 + KC) of this block's rows of A and columns of B into registers.
__device__ __forceinline__ void lc_gemm_load(lc_chunk& r, const float* __restrict__ a,
                                             const float* __restrict__ b, int m0, int n0, int k0,
                                             int k_end, int M, int N, int K, int lane) {
    const int k = k0 + lane;
#pragma unroll
    for (int t = 0; t < LC_A_PER_LANE; ++t) {  // row m0 + t, column k: 128-byte rows
        const int m = m0 + t;
        r.a[t] = (m < M && k < k_end) ? __ldg(a + (size_t)m * K + k) : 0.0f;
    }
    const int n = n0 + (lane & 15);
#pragma unroll
    for (int t = 0; t < LC_B_PER_LANE; ++t) {  // rows k0 + 2 t (lanes 0-15) and + 1 (16-31)
        const int kb = k0 + 2 * t + (lane >> 4);
        r.b[t] = (kb < k_end && n < N) ? __ldg(b + (size_t)kb * N + n) : 0.0f;
    }
}

__device__ __forceinline__ void lc_gemm_stage(float* as, float* bs, const lc_chunk& r, int lane) {
#pragma unroll
    for (int t = 0; t < LC_A_PER_LANE; ++t) as[lane * (LC_BM + 1) + t] = r.a[t];
#pragma unroll
    for (int t = 0; t < LC_B_PER_LANE; ++t) bs[(2 * t + (lane >> 4)) * LC_BN + (lane & 15)] = r.b[t];
}

extern "C" __global__ void __launch_bounds__(32 * GROUPS)
lc_gemm_tiled(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
              int M, int N, int K) {
    extern __shared__ __align__(16) float lc_gemm_smem[];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int ly = lane >> 2;
    const int lx = lane & 3;
    const int m0 = blockIdx.y * LC_BM;
    const int n0 = blockIdx.x * LC_BN;
    float* as = lc_gemm_smem + warp * LC_WARP_SMEM;
    float* bs = as + LC_AS;

    // This warp's K slice, a whole number of chunks.
    const int per = (K + GROUPS - 1) / GROUPS;
    const int kg = ((per + LC_KC - 1) / LC_KC) * LC_KC;
    const int k_begin = min(K, warp * kg);
    const int k_end = min(K, k_begin + kg);

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    lc_chunk next;
    if (k_begin < k_end) lc_gemm_load(next, a, b, m0, n0, k_begin, k_end, M, N, K, lane);
    for (int k0 = k_begin; k0 < k_end; k0 += LC_KC) {
        __syncwarp();  // the previous chunk is no longer read
        lc_gemm_stage(as, bs, next, lane);
        __syncwarp();
        if (k0 + LC_KC < k_end) {
            lc_gemm_load(next, a, b, m0, n0, k0 + LC_KC, k_end, M, N, K, lane);
        }
#pragma unroll 8
        for (int kk = 0; kk < LC_KC; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = as[kk * (LC_BM + 1) + ly + 8 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = bs[kk * LC_BN + lx + 4 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
    }

    // Sum the warps' partial tiles: red[warp][row][col], then 2 outputs per thread.
    __syncthreads();
    float* red = lc_gemm_smem;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            red[warp * LC_BM * LC_BN + (ly + 8 * i) * LC_BN + lx + 4 * j] = acc[i][j];
        }
    __syncthreads();
    for (int o = threadIdx.x; o < LC_BM * LC_BN; o += 32 * GROUPS) {
        float s = 0.0f;
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) s += red[g * LC_BM * LC_BN + o];
        const int m = m0 + o / LC_BN;
        const int n = n0 + o % LC_BN;
        if (m < M && n < N) c[(size_t)m * N + n] = s;
    }
}
