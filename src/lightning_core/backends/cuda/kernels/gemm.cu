// Small-GEMM kernels: C[M, N] = A[M, K] @ B[K, N], row-major float32, true fp32 FMAs.
//
// For small GEMMs, where cuBLAS's tiles leave most SMs idle (a 256^3 product is 4 of its
// 128 x 128 tiles) and its host call costs more than the math. One block of GROUPS warps
// owns a BM x BN tile of C; warp g accumulates the K slice [g * KG, (g + 1) * KG) on its own
// (staging KC-deep chunks of A and B in its shared memory), so the warps never wait on each
// other until the end, when their partial tiles are summed through shared memory.
// grid = (ceil(N / BN), ceil(M / BM)), block = 32 * GROUPS. Out-of-range rows, columns and k
// are zero-filled. Two kernels share that plan:
//
// - lc_gemm_tiled4 (K % 4 == 0, N % 4 == 0, every base 16-byte aligned): chunks arrive by
//   cp.async in PIECES commit groups, so the FMAs on a chunk's first k start while the rest
//   is in flight, and the next chunk is queued into a second buffer while this one is used.
//   Lane (ly = lane / 4, lx = lane % 4) holds rows ly + 8 i and columns 4 lx + j (i, j < 4);
//   a step of four k reads 4 + 4 16-byte words (A rows padded to KC + 4 floats: the 8 row
//   groups a warp reads fall in 8 distinct bank quads). Outputs leave as 16-byte stores.
//   Run 57 (tools/probe_gemm_small.py, device time): 256^3 4.15 us against lc_gemm_tiled's
//   4.61, 320^3 6.31 against 9.07.
//   Dynamic shared memory: GROUPS * NBUF * KC * (BM + 4 + BN) floats, NBUF = 2 when a warp's
//   K slice holds more than one chunk, else 1 (at least GROUPS * BM * BN for the sum).
// - lc_gemm_tiled (any shape and alignment): 4-byte loads, the next chunk prefetched into
//   registers. Lane (ly, lx) holds rows ly + 8 i and columns lx + 4 j. A chunk is stored
//   transposed with a padded row (lanes storing one k column hit distinct banks).
//   Dynamic shared memory: GROUPS * KC * (BM + 1 + BN) floats.

#define LC_BM 32
#define LC_BN 16
#define LC_KC 32
#ifndef GROUPS
#define GROUPS 8
#endif
#ifndef PIECES
#define PIECES 2
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

// This warp's K slice [k_begin, k_end): a whole number of KC chunks, the same for every warp
// but the last. Returns the slice length (gemm.py sizes lc_gemm_tiled4's buffers by it).
__device__ __forceinline__ int lc_gemm_slice(int K, int warp, int& k_begin, int& k_end) {
    const int per = (K + GROUPS - 1) / GROUPS;
    const int kg = ((per + LC_KC - 1) / LC_KC) * LC_KC;
    k_begin = min(K, warp * kg);
    k_end = min(K, k_begin + kg);
    return kg;
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

    int k_begin, k_end;
    lc_gemm_slice(K, warp, k_begin, k_end);
    float acc[4][4] = {};

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

// ---- lc_gemm_tiled4 ----------------------------------------------------------------------
#define LC_A4 (LC_BM * (LC_KC + 4))  // one A chunk, row-major, rows padded to 16-byte multiples
#define LC_B4 (LC_KC * LC_BN)
#define LC_PK (LC_KC / PIECES)     // k per commit group

__device__ __forceinline__ void lc_cp16(float* dst, const float* src, bool ok) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    // src-size 0 zero-fills the 16 bytes without reading (the address is then a valid base).
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(ok ? 16 : 0));
}

__device__ __forceinline__ void lc_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most n of this thread's commit groups are in flight (n < 2 * PIECES <= 8).
__device__ __forceinline__ void lc_cp_wait(int n) {
    switch (n) {
        case 0: asm volatile("cp.async.wait_group 0;\n" ::); break;
        case 1: asm volatile("cp.async.wait_group 1;\n" ::); break;
        case 2: asm volatile("cp.async.wait_group 2;\n" ::); break;
        case 3: asm volatile("cp.async.wait_group 3;\n" ::); break;
        case 4: asm volatile("cp.async.wait_group 4;\n" ::); break;
        case 5: asm volatile("cp.async.wait_group 5;\n" ::); break;
        case 6: asm volatile("cp.async.wait_group 6;\n" ::); break;
        default: asm volatile("cp.async.wait_group 7;\n" ::); break;
    }
}

// Queues chunk [k0, k0 + KC) of this block's rows of A and columns of B into (as, bs), one
// commit group per LC_PK k.
__device__ __forceinline__ void lc_gemm_issue4(float* as, float* bs, const float* __restrict__ a,
                                               const float* __restrict__ b, int m0, int n0,
                                               int k0, int k_end, int M, int N, int K, int lane) {
#pragma unroll
    for (int p = 0; p < PIECES; ++p) {
#pragma unroll
        for (int t = 0; t < LC_BM * LC_PK / 128; ++t) {  // A: BM rows x PK k, 16 bytes a lane
            const int idx = lane + 32 * t;
            const int row = idx / (LC_PK / 4), q = idx % (LC_PK / 4);
            const int m = m0 + row, k = k0 + p * LC_PK + 4 * q;
            const bool ok = m < M && k < k_end;  // K % 4 == 0: k < k_end covers k + 3
            lc_cp16(as + row * (LC_KC + 4) + p * LC_PK + 4 * q, ok ? a + (size_t)m * K + k : a,
                    ok);
        }
#pragma unroll
        for (int t = 0; t < (LC_PK * LC_BN / 4 + 31) / 32; ++t) {  // B: PK rows x BN columns
            const int idx = lane + 32 * t;
            if (idx < LC_PK * LC_BN / 4) {
                const int row = idx / (LC_BN / 4), q = idx % (LC_BN / 4);
                const int k = k0 + p * LC_PK + row, n = n0 + 4 * q;
                const bool ok = k < k_end && n < N;  // N % 4 == 0: n < N covers n + 3
                lc_cp16(bs + (p * LC_PK + row) * LC_BN + 4 * q, ok ? b + (size_t)k * N + n : b,
                        ok);
            }
        }
        lc_cp_commit();
    }
}

extern "C" __global__ void __launch_bounds__(32 * GROUPS)
lc_gemm_tiled4(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
               int M, int N, int K) {
    extern __shared__ __align__(16) float lc_gemm_smem[];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int ly = lane >> 2;
    const int lx = lane & 3;
    const int m0 = blockIdx.y * LC_BM;
    const int n0 = blockIdx.x * LC_BN;

    int k_begin, k_end;
    const int nbuf = lc_gemm_slice(K, warp, k_begin, k_end) > LC_KC ? 2 : 1;  // as the host's
    float* base = lc_gemm_smem + warp * nbuf * (LC_A4 + LC_B4);
    float acc[4][4] = {};

    if (k_begin < k_end) {
        lc_gemm_issue4(base, base + LC_A4, a, b, m0, n0, k_begin, k_end, M, N, K, lane);
    }
    int buf = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += LC_KC) {
        const float* as = base + buf * (LC_A4 + LC_B4);
        const float* bs = as + LC_A4;
        const bool more = k0 + LC_KC < k_end;
        if (more) {  // the other buffer was last read before the previous chunk's __syncwarp
            float* nas = base + (buf ^ 1) * (LC_A4 + LC_B4);
            lc_gemm_issue4(nas, nas + LC_A4, a, b, m0, n0, k0 + LC_KC, k_end, M, N, K, lane);
        }
#pragma unroll
        for (int p = 0; p < PIECES; ++p) {
            lc_cp_wait(PIECES - 1 - p + (more ? PIECES : 0));
            __syncwarp();  // every lane's part of piece p has landed
#pragma unroll
            for (int kq = 0; kq < LC_PK / 4; ++kq) {
                const int kk = p * LC_PK + 4 * kq;
                float4 av[4], bv[4];
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    av[i] = *reinterpret_cast<const float4*>(as + (ly + 8 * i) * (LC_KC + 4) + kk);
#pragma unroll
                for (int q = 0; q < 4; ++q)
                    bv[q] = *reinterpret_cast<const float4*>(bs + (kk + q) * LC_BN + 4 * lx);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float ak[4] = {av[i].x, av[i].y, av[i].z, av[i].w};
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                        acc[i][0] = fmaf(ak[q], bv[q].x, acc[i][0]);
                        acc[i][1] = fmaf(ak[q], bv[q].y, acc[i][1]);
                        acc[i][2] = fmaf(ak[q], bv[q].z, acc[i][2]);
                        acc[i][3] = fmaf(ak[q], bv[q].w, acc[i][3]);
                    }
                }
            }
        }
        __syncwarp();  // this buffer is refilled only after every lane is done with it
        buf ^= 1;
    }

    // Sum the warps' partial tiles: red[warp][row][col], then 4 adjacent outputs a thread.
    __syncthreads();
    float* red = lc_gemm_smem;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        *reinterpret_cast<float4*>(red + warp * LC_BM * LC_BN + (ly + 8 * i) * LC_BN + 4 * lx) =
            make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    }
    __syncthreads();
    for (int o = threadIdx.x; o < LC_BM * LC_BN / 4; o += 32 * GROUPS) {
        float4 s = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) {
            const float4 v = *reinterpret_cast<const float4*>(red + g * LC_BM * LC_BN + 4 * o);
            s.x += v.x;
            s.y += v.y;
            s.z += v.z;
            s.w += v.w;
        }
        const int m = m0 + (4 * o) / LC_BN;
        const int n = n0 + (4 * o) % LC_BN;
        if (m < M && n < N) *reinterpret_cast<float4*>(c + (size_t)m * N + n) = s;
    }
}
