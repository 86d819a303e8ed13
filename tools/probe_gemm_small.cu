// Candidate small-GEMM kernel for tools/probe_gemm_small.py. It lost to the package's cp.async
// kernel (lc_gemm_tiled4, run 57) and stays for its diagnostics: NO_COMPUTE and NO_LOAD time
// the loads and the FMAs alone. The layout of kernels/gemm.cu (32 x 16 tile of C per block, the K range split between
// the block's warps, partial tiles summed through shared memory), but each lane holds a 4 x 4
// block of contiguous rows and columns, and the A chunk stays row-major, so one step of four k
// reads 4 + 4 16-byte words (8 LDS.128 for 64 FMAs) where kernels/gemm.cu reads 32 scalars.
// Rows of the A chunk are padded to KC + 4 floats: 16-byte aligned, and the two row groups a
// quarter-warp reads sit 16 banks apart.

#define VBM 32
#define VBN 16
#ifndef VKC
#define VKC 32
#endif
#ifndef NO_COMPUTE
#define NO_COMPUTE 0
#endif
#ifndef NO_LOAD
#define NO_LOAD 0
#endif
#ifndef LOAD4
#define LOAD4 0
#endif
#ifndef GROUPS
#define GROUPS 8
#endif
#define VAS (VBM * (VKC + 4))
#define VWARP_SMEM (VAS + VKC * VBN)

extern "C" __global__ void __launch_bounds__(32 * GROUPS)
lc_gemm_vec(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
            int M, int N, int K) {
    extern __shared__ __align__(16) float smem[];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int ly = lane >> 2;
    const int lx = lane & 3;
    const int m0 = blockIdx.y * VBM;
    const int n0 = blockIdx.x * VBN;
    float* as = smem + warp * VWARP_SMEM;
    float* bs = as + VAS;

    const int per = (K + GROUPS - 1) / GROUPS;
    const int kg = ((per + VKC - 1) / VKC) * VKC;
    const int k_begin = min(K, warp * kg);
    const int k_end = min(K, k_begin + kg);

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (int k0 = k_begin; k0 < k_end; k0 += VKC) {
#if LOAD4
        // K % 4 == 0, N % 4 == 0 and 16-byte aligned bases: 16-byte loads and stores.
        {
            // A: KC / 4 lanes per row, 128 / KC rows per load; B: 4 lanes per row, 8 rows.
            constexpr int AL = VKC / 4, AR = 128 / VKC, AN = VBM * VKC / 128, BNL = VKC / 8;
            float4 qa[AN], qb[BNL];
            const int kc = k0 + 4 * (lane % AL);
#pragma unroll
            for (int t = 0; t < AN; ++t) {
                const int m = m0 + AR * t + lane / AL;
                qa[t] = (!NO_LOAD && m < M && kc < k_end)
                            ? __ldg(reinterpret_cast<const float4*>(a + (size_t)m * K + kc))
                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
            const int nc = n0 + 4 * (lane & 3);
#pragma unroll
            for (int t = 0; t < BNL; ++t) {
                const int kb = k0 + 8 * t + (lane >> 2);
                qb[t] = (!NO_LOAD && kb < k_end && nc < N)
                            ? __ldg(reinterpret_cast<const float4*>(b + (size_t)kb * N + nc))
                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            }
            __syncwarp();
#pragma unroll
            for (int t = 0; t < AN; ++t)
                *reinterpret_cast<float4*>(as + (AR * t + lane / AL) * (VKC + 4) + 4 * (lane % AL)) = qa[t];
#pragma unroll
            for (int t = 0; t < BNL; ++t)
                *reinterpret_cast<float4*>(bs + (8 * t + (lane >> 2)) * VBN + 4 * (lane & 3)) = qb[t];
        }
#else
        static_assert(VKC == 32, "the scalar loads put k on the lane");
        float ra[VBM], rb[VKC * VBN / 32];
        const int bn = n0 + (lane & 15);
        const int k = k0 + lane;
#pragma unroll
        for (int t = 0; t < VBM; ++t) {
            const int m = m0 + t;
            ra[t] = (m < M && k < k_end) ? __ldg(a + (size_t)m * K + k) : 0.0f;
        }
#pragma unroll
        for (int t = 0; t < VKC * VBN / 32; ++t) {
            const int kb = k0 + 2 * t + (lane >> 4);
            rb[t] = (kb < k_end && bn < N) ? __ldg(b + (size_t)kb * N + bn) : 0.0f;
        }
        __syncwarp();
#pragma unroll
        for (int t = 0; t < VBM; ++t) as[t * (VKC + 4) + lane] = ra[t];
#pragma unroll
        for (int t = 0; t < VKC * VBN / 32; ++t) bs[(2 * t + (lane >> 4)) * VBN + (lane & 15)] = rb[t];
#endif
        __syncwarp();
#pragma unroll
        for (int kq = 0; kq < (NO_COMPUTE ? 0 : VKC / 4); ++kq) {
            float4 av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i)
                av[i] = *reinterpret_cast<const float4*>(as + (4 * ly + i) * (VKC + 4) + 4 * kq);
#pragma unroll
            for (int q = 0; q < 4; ++q)
                bv[q] = *reinterpret_cast<const float4*>(bs + (4 * kq + q) * VBN + 4 * lx);
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

    __syncthreads();
    float* red = smem;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        *reinterpret_cast<float4*>(red + warp * VBM * VBN + (4 * ly + i) * VBN + 4 * lx) =
            make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    }
    __syncthreads();
    for (int o = threadIdx.x; o < VBM * VBN; o += 32 * GROUPS) {
        float s = 0.0f;
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) s += red[g * VBM * VBN + o];
        const int m = m0 + o / VBN;
        const int n = n0 + o % VBN;
        if (m < M && n < N) c[(size_t)m * N + n] = s;
    }
}
