// Single-head attention forward: out = post(softmax(Q K^T * scale, causal mask j > i) V).
//
// lc_attention_flash: online softmax (FlashAttention-2 style). A block of 128 threads owns
// BLOCK_M = 16 * ROWS_PT query rows and walks key/value tiles of BLOCK_N = 8 * KEYS_PT keys
// staged in shared memory; each thread keeps a ROWS_PT x KEYS_PT tile of S and a ROWS_PT x
// HEAD_DIM_P / 8 tile of O in registers (rows ty + 16 * a, keys tx + 8 * b: strided so that the
// rows and keys one warp reads lie in distinct banks). grid = (splits, query tiles).
// With splits > 1 the key range of a query tile is divided between blocks (split-KV, for
// sequences whose query tiles alone leave SMs idle); each block writes a partial (m, l, acc)
// and the last block of the tile to arrive, found with an atomic counter, merges the partials
// and writes the output, so the op is always one launch. Launch limits: head_dim <= 256,
// dynamic shared memory up to ~170 KB (opt-in). backends/cuda/attention.py picks the variant:
//   fused_small    grid (1, 1): one block holds every query row, no split; scores, softmax,
//                  P V and the postprocess in one launch (tiny problems, seq <= 64).
//   flash_splitkv  thinner query tiles and a split count chosen from the SM count.
//
// Compile-time defines (NVRTC -D):
//   LC_DTYPE     0 float32, 1 float64, 2 float16 (stored as raw bits, computed in float32)
//   VEC_IO       1 when head_dim % 4 == 0 and every pointer is 16-byte aligned
//   HEAD_DIM_P   head_dim rounded up to 32, 64, 128 or 256 (zero padded)
//   ROWS_PT      query rows per thread (1, 2 or 4)
//   KEYS_PT      keys per thread per tile (4 or 8)
//   MIN_BLOCKS   blocks per SM the flash kernel's registers must leave room for (launch bounds)
//   LC_TC        1: the flash kernel's Q K^T and P V run on tensor cores with split products
//                (float32 only, ROWS_PT 4, HEAD_DIM_P 32 or 64; see lc_tc_tile); under a
//                causal mask the 8-key steps across the diagonal run as guarded FMAs
//   LC_TC_TRUNC  1: split x as hi = x with its low 13 bits cleared, lo = x - hi (exact; the
//                tensor core reads the top 19 bits of lo); 0: both parts rounded by cvt.rna
//
// Scores are kept in the log2 domain (Q is multiplied by scale * log2(e) on load) so every
// exponential is one exp2. Rows with every key masked cannot occur for a valid row, but the
// running-max update still guards -inf so padded rows never produce NaN.

#ifndef LC_DTYPE
#define LC_DTYPE 0
#endif
#ifndef VEC_IO
#define VEC_IO 0
#endif
#ifndef HEAD_DIM_P
#define HEAD_DIM_P 64
#endif
#ifndef ROWS_PT
#define ROWS_PT 4
#endif
#ifndef KEYS_PT
#define KEYS_PT 8
#endif
#ifndef QK_UNROLL
#define QK_UNROLL 8  // head-dim steps of Q K^T unrolled (four dims each)
#endif
#ifndef PV_UNROLL
#define PV_UNROLL 1  // key steps of P V unrolled (four keys each)
#endif
#define LC_PRAGMA(x) _Pragma(#x)
#define LC_UNROLL(n) LC_PRAGMA(unroll n)
#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1  // resident blocks per SM the register allocation must allow
#endif
#ifndef LC_TC
#define LC_TC 0
#endif
#ifndef LC_TC_TRUNC
#define LC_TC_TRUNC 1
#endif
#if LC_TC && (LC_DTYPE != 0 || ROWS_PT != 4 || (HEAD_DIM_P != 32 && HEAD_DIM_P != 64))
#error "LC_TC needs float32, ROWS_PT 4 and HEAD_DIM_P 32 or 64"
#endif

#if LC_DTYPE == 1
typedef double acc_t;
typedef double io_t;
typedef double2 vec_t;  // 16 bytes: two values
#define LC_NEG_INF (-__longlong_as_double(0x7ff0000000000000LL))
#else
typedef float acc_t;
typedef float4 vec_t;  // 16 bytes: four values
#define LC_NEG_INF (-__int_as_float(0x7f800000))
#if LC_DTYPE == 2
typedef unsigned short io_t;  // float16 bits, converted with cvt (no cuda_fp16.h needed)
#else
typedef float io_t;
#endif
#endif
#define LC_LOG2E 1.4426950408889634
#define LC_VECS (4 * (int)sizeof(acc_t) / 16)  // 16-byte pieces in four values

struct acc4 {
    acc_t v[4];
};

__device__ __forceinline__ acc_t lc_to_acc(io_t h) {
#if LC_DTYPE == 2
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#else
    return h;
#endif
}

__device__ __forceinline__ io_t lc_from_acc(acc_t f) {
#if LC_DTYPE == 2
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    return f;
#endif
}

// Four values at a 16-byte aligned address: plain shared memory, or global through L2 only
// (cg: partials written by other blocks must not come from a stale L1 line).
template <bool CG>
__device__ __forceinline__ acc4 lc_ld4(const acc_t* p) {
    union { vec_t q[LC_VECS]; acc_t v[4]; } u;
#pragma unroll
    for (int i = 0; i < LC_VECS; ++i) {
        u.q[i] = CG ? __ldcg(reinterpret_cast<const vec_t*>(p) + i)
                    : reinterpret_cast<const vec_t*>(p)[i];
    }
    return {{u.v[0], u.v[1], u.v[2], u.v[3]}};
}

template <bool CG>
__device__ __forceinline__ void lc_st4(acc_t* p, const acc4& a) {
    union { vec_t q[LC_VECS]; acc_t v[4]; } u = {};
#pragma unroll
    for (int e = 0; e < 4; ++e) u.v[e] = a.v[e];
#pragma unroll
    for (int i = 0; i < LC_VECS; ++i) {
        if (CG) {
            __stcg(reinterpret_cast<vec_t*>(p) + i, u.q[i]);
        } else {
            reinterpret_cast<vec_t*>(p)[i] = u.q[i];
        }
    }
}

__device__ __forceinline__ acc_t lc_post(acc_t o, acc_t out_scale, acc_t out_bias, int relu) {
    const acc_t r = o * out_scale + out_bias;
    return (relu && r < (acc_t)0) ? (acc_t)0 : r;
}

// 16-byte loads in flight per thread while a tile is staged (fewer for wide heads: registers).
#define LC_LOAD_BATCH (HEAD_DIM_P <= 64 ? 8 : 512 / HEAD_DIM_P)

// Four values of a [seq, d] row from column c (columns >= d read as zero), times mul.
__device__ __forceinline__ acc4 lc_ld_src4(const io_t* __restrict__ p, int c, int d, acc_t mul) {
    acc4 val = {{(acc_t)0, (acc_t)0, (acc_t)0, (acc_t)0}};
#if VEC_IO && LC_DTYPE == 2
    const uint2 t = __ldg(reinterpret_cast<const uint2*>(p));
    const io_t h[4] = {(io_t)(t.x & 0xffffu), (io_t)(t.x >> 16),
                       (io_t)(t.y & 0xffffu), (io_t)(t.y >> 16)};
#pragma unroll
    for (int e = 0; e < 4; ++e) val.v[e] = lc_to_acc(h[e]) * mul;
#elif VEC_IO
    val = lc_ld4<false>(reinterpret_cast<const acc_t*>(p));
#pragma unroll
    for (int e = 0; e < 4; ++e) val.v[e] *= mul;
#else
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        if (c + e < d) val.v[e] = lc_to_acc(p[e]) * mul;
    }
#endif
    return val;
}

// Copies rows [row0, row0 + ROWS) of a [seq, d] matrix into a shared tile with row stride LD
// and width WIDTH (a multiple of 4), multiplying by mul; rows >= seq and columns >= d are zero.
// A block of 128 threads issues LC_LOAD_BATCH 16-byte global loads each before the first shared
// store, so a tile costs a round trip or two instead of one per loop trip.
template <int ROWS, int WIDTH, int LD>
__device__ __forceinline__ void lc_load_tile(acc_t* dst, const io_t* __restrict__ src, int row0,
                                             int seq, int d, acc_t mul, int tid) {
    constexpr int W4 = WIDTH / 4;
    constexpr int TOTAL = ROWS * W4;
    constexpr int ITERS = (TOTAL + 127) / 128;
    constexpr int BATCH = ITERS < LC_LOAD_BATCH ? ITERS : LC_LOAD_BATCH;
#pragma unroll 1  // unrolled, wide tiles hoist every trip's addresses into registers
    for (int i0 = 0; i0 < ITERS; i0 += BATCH) {
        acc4 val[BATCH];
#pragma unroll
        for (int u = 0; u < BATCH; ++u) {
            const int idx = tid + (i0 + u) * 128;
            const int r = idx / W4;
            const int c = (idx - r * W4) << 2;
            val[u] = {{(acc_t)0, (acc_t)0, (acc_t)0, (acc_t)0}};
            if (i0 + u < ITERS && (TOTAL % 128 == 0 || idx < TOTAL) && row0 + r < seq && c < d) {
                val[u] = lc_ld_src4(src + (size_t)(row0 + r) * d + c, c, d, mul);
            }
        }
#pragma unroll
        for (int u = 0; u < BATCH; ++u) {
            const int idx = tid + (i0 + u) * 128;
            const int r = idx / W4;
            const int c = (idx - r * W4) << 2;
            if (i0 + u < ITERS && (TOTAL % 128 == 0 || idx < TOTAL)) {
                lc_st4<false>(dst + r * LD + c, val[u]);
            }
        }
    }
}

// Writes post(o * il) for row `row`, columns [c, c + 4) clipped to d.
__device__ __forceinline__ void lc_store_out4(io_t* __restrict__ out, int row, int c, int d,
                                              const acc4& o, acc_t il, acc_t out_scale,
                                              acc_t out_bias, int relu) {
    io_t* p = out + (size_t)row * d + c;
    io_t h[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) h[e] = lc_from_acc(lc_post(o.v[e] * il, out_scale, out_bias, relu));
#if VEC_IO && LC_DTYPE == 2
    *reinterpret_cast<uint2*>(p) = make_uint2((unsigned int)h[0] | ((unsigned int)h[1] << 16),
                                              (unsigned int)h[2] | ((unsigned int)h[3] << 16));
#elif VEC_IO
    lc_st4<false>(reinterpret_cast<acc_t*>(p), {{h[0], h[1], h[2], h[3]}});
#else
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        if (c + e < d) p[e] = h[e];
    }
#endif
}

// o[a] += sum_jj p[a][jj] * V[jj] for four V rows starting at v (row stride ld). With guard a
// zero weight leaves o untouched: 0 * (Inf or NaN in a masked V row) must not reach o.
template <int ROWS>
__device__ __forceinline__ void lc_pv4(acc4 (&o)[ROWS], const acc4 (&p)[ROWS], const acc4& vv,
                                       int jj, bool guard) {
#pragma unroll
    for (int a = 0; a < ROWS; ++a) {
        const acc_t pa = p[a].v[jj];
        const bool skip = guard && pa == (acc_t)0;
#pragma unroll
        for (int e = 0; e < 4; ++e) o[a].v[e] = skip ? o[a].v[e] : fma(pa, vv.v[e], o[a].v[e]);
    }
}

#define LC_BLOCK_M (16 * ROWS_PT)
#define LC_BLOCK_N (8 * KEYS_PT)
#define LC_LDK (HEAD_DIM_P + 4)
#if LC_TC
#define LC_LDV (HEAD_DIM_P + 8)  // B fragments read V[key t][dim g]: rows 8 banks apart
#else
#define LC_LDV HEAD_DIM_P
#endif
#define LC_LDP (LC_BLOCK_N + 4)
// P reuses the K tile's shared memory once every warp has finished Q K^T (one more barrier per
// tile): a 64-row fp32 block needs 51 KB instead of 68 KB.
#define LC_KP_ELEMS (LC_BLOCK_N * LC_LDK > LC_BLOCK_M * LC_LDP ? LC_BLOCK_N * LC_LDK \
                                                               : LC_BLOCK_M * LC_LDP)
#define LC_NG (HEAD_DIM_P / 32)
#define LC_MERGE_B (LC_NG <= 2 ? 4 : 2)  // splits merged per round (registers: 4 * LC_NG each)

// Reduction over the 8 lanes (tx = lane & 7) that share a query row.
template <bool MAX>
__device__ __forceinline__ acc_t lc_row_reduce8(acc_t x) {
#pragma unroll
    for (int off = 1; off < 8; off <<= 1) {
        const acc_t y = __shfl_xor_sync(0xffffffffu, x, off);
        x = MAX ? fmax(x, y) : x + y;
    }
    return x;
}

#ifndef LC_ROWS_ONLY  // the rows kernel's builds skip the flash kernel
#if LC_TC
// Tensor-core products at float32 accuracy (3xTF32): x = hi + lo, both parts TF32 (the tensor
// core reads 19 bits: sign, exponent, 10 mantissa bits), and a * b ~ a.hi * b.hi + a.hi * b.lo
// + a.lo * b.hi. Truncating splits leave |lo| < 2^-10 |x| (the dropped a.lo * b.lo and the
// bits of lo the core ignores are ~2^-20 of the product: measured max error ~1.5e-6 against
// ~3e-7 for the SIMT kernel at seq 512, d 64, N(0,1) inputs); rounded splits (cvt.rna) are
// ~4x tighter but cost more than the products on sm_90 (run 24: seq 4096 114 vs 87 us).
// Accumulation is float32, as in the SIMT kernel.
__device__ __forceinline__ void lc_tf32_split(float x, unsigned& hi, unsigned& lo) {
#if LC_TC_TRUNC
    hi = __float_as_uint(x) & 0xffffe000u;
    lo = __float_as_uint(x - __uint_as_float(hi));
#else
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(hi) : "f"(x));
    const float rest = x - __uint_as_float(hi);
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(lo) : "f"(rest));
#endif
}

// d += a * b for one m16n8k8 tile (A row-major 16x8, B column-major 8x8, float32 accumulate).
__device__ __forceinline__ void lc_mma_tf32(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                            unsigned b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The three split products of one tile: the small terms first.
__device__ __forceinline__ void lc_mma_3xtf32(float (&d)[4], const unsigned (&ah)[4],
                                              const unsigned (&al)[4], float b0, float b1) {
    unsigned bh0, bl0, bh1, bl1;
    lc_tf32_split(b0, bh0, bl0);
    lc_tf32_split(b1, bh1, bl1);
    lc_mma_tf32(d, al, bh0, bh1);
    lc_mma_tf32(d, ah, bl0, bl1);
    lc_mma_tf32(d, ah, bh0, bh1);
}

#define LC_TC_DK (HEAD_DIM_P / 8)  // k-steps of Q K^T, and n-tiles of O over the head dim
#define LC_TC_NK (LC_BLOCK_N / 8)  // n-tiles of S over the keys, and k-steps of P V

// Fragment roles (PTX m16n8k8, lane = 4 * g + t): A holds (g, t), (g + 8, t), (g, t + 4),
// (g + 8, t + 4); B holds (k = t, n = g), (t + 4, g); C holds (g, 2t), (g, 2t + 1),
// (g + 8, 2t), (g + 8, 2t + 1). Warp w owns query rows 16w..16w+15 of the block's tile.
struct lc_tc_state {
    unsigned qh[LC_TC_DK][4], ql[LC_TC_DK][4];  // this warp's Q rows (scaled), split
    float o[LC_TC_DK][4];                        // unnormalised O, C layout
    float m[2], l[2];                            // rows g and g + 8: running max, partial sum
};

__device__ __forceinline__ void lc_tc_load_q(lc_tc_state& st, const float* qs, int wrow, int g,
                                             int t) {
#pragma unroll
    for (int kk = 0; kk < LC_TC_DK; ++kk) {
        const float* r0 = qs + (wrow + g) * LC_LDK + kk * 8 + t;
        const float* r1 = r0 + 8 * LC_LDK;
        lc_tf32_split(r0[0], st.qh[kk][0], st.ql[kk][0]);
        lc_tf32_split(r1[0], st.qh[kk][1], st.ql[kk][1]);
        lc_tf32_split(r0[4], st.qh[kk][2], st.ql[kk][2]);
        lc_tf32_split(r1[4], st.qh[kk][3], st.ql[kk][3]);
    }
}

// P V for one k-step of 8 keys (c0 ..) that straddles the causal diagonal of the warp's rows:
// plain float32 FMAs, each behind its key <= row test, so a masked key's value never enters
// (the tensor-core product would multiply it by zero). Lane (g, t) gathers its rows' 8
// probabilities from the quad (column j of row g sits in lane 4g + j/2, element j & 1; row
// g + 8 in elements 2 + (j & 1)) and updates its own C elements of O.
__device__ __forceinline__ void lc_tc_pv_guarded(lc_tc_state& st, const float (&p)[4],
                                                 const float* vs, int c0, int row0, int lane) {
    const int g = lane >> 2, t = lane & 3;
    float pr[2][8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int from = (lane & ~3) | (j >> 1);
        pr[0][j] = __shfl_sync(0xffffffffu, p[j & 1], from);
        pr[1][j] = __shfl_sync(0xffffffffu, p[2 + (j & 1)], from);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = row0 + g + 8 * h;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            if (c0 + j > row) continue;
            const float* vr = vs + j * LC_LDV + 2 * t;
#pragma unroll
            for (int n = 0; n < LC_TC_DK; ++n) {
                st.o[n][2 * h] = fmaf(pr[h][j], vr[n * 8], st.o[n][2 * h]);
                st.o[n][2 * h + 1] = fmaf(pr[h][j], vr[n * 8 + 1], st.o[n][2 * h + 1]);
            }
        }
    }
}

// One key tile (K in ks, V in vs) into the warp's running state.
__device__ __forceinline__ void lc_tc_tile(lc_tc_state& st, const float* ks, const float* vs,
                                           int key0, int row0, int seq, int causal,
                                           bool need_mask, int lane) {
    const int g = lane >> 2, t = lane & 3;
    float s[LC_TC_NK][4];
#pragma unroll
    for (int nt = 0; nt < LC_TC_NK; ++nt) {
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
        const float* kr = ks + (nt * 8 + g) * LC_LDK + t;
#pragma unroll
        for (int kk = 0; kk < LC_TC_DK; ++kk) {
            lc_mma_3xtf32(s[nt], st.qh[kk], st.ql[kk], kr[kk * 8], kr[kk * 8 + 4]);
        }
    }
    float mx[2] = {LC_NEG_INF, LC_NEG_INF};
#pragma unroll
    for (int nt = 0; nt < LC_TC_NK; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            if (need_mask) {
                const int key = key0 + nt * 8 + 2 * t + (e & 1);
                const int row = row0 + g + 8 * (e >> 1);
                if (key >= seq || (causal && key > row)) s[nt][e] = LC_NEG_INF;
            }
            mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
        }
    }
    float m_use[2], alpha[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        const float m_new = fmaxf(st.m[h], mx[h]);
        m_use[h] = (m_new == LC_NEG_INF) ? 0.f : m_new;
        alpha[h] = exp2f(st.m[h] - m_use[h]);
        st.m[h] = m_new;
        st.l[h] *= alpha[h];
    }
#pragma unroll
    for (int nt = 0; nt < LC_TC_NK; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            s[nt][e] = exp2f(s[nt][e] - m_use[e >> 1]);
            st.l[e >> 1] += s[nt][e];
        }
    }
#pragma unroll
    for (int n = 0; n < LC_TC_DK; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) st.o[n][e] *= alpha[e >> 1];
    }
    // P V: P's C fragments become A fragments (column t of a k-step sits in lane 4g + t/2,
    // element t & 1; column t + 4 two lanes further).
    const int src = (lane & ~3) | (t >> 1);
    const bool odd = t & 1;
#pragma unroll
    for (int kk = 0; kk < LC_TC_NK; ++kk) {
        if (causal && need_mask) {
            // A masked key's value row may hold Inf or NaN, and 0 * Inf is NaN in a product,
            // so no masked key may enter one. The warp's rows are row0 .. row0 + 15 (uniform
            // across the warp, so the shuffles below stay warp-wide).
            const int c0 = key0 + kk * 8;
            if (c0 > row0 + 15) continue;  // every key of the step is masked for every row
            if (c0 + 7 > row0) {           // straddles the diagonal: guarded scalar FMAs
                lc_tc_pv_guarded(st, s[kk], vs + kk * 8 * LC_LDV, c0, row0, lane);
                continue;
            }
        }
        float x[4], y[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            x[e] = __shfl_sync(0xffffffffu, s[kk][e], src);
            y[e] = __shfl_sync(0xffffffffu, s[kk][e], src + 2);
        }
        unsigned ph[4], pl[4];
        lc_tf32_split(odd ? x[1] : x[0], ph[0], pl[0]);
        lc_tf32_split(odd ? x[3] : x[2], ph[1], pl[1]);
        lc_tf32_split(odd ? y[1] : y[0], ph[2], pl[2]);
        lc_tf32_split(odd ? y[3] : y[2], ph[3], pl[3]);
        const float* vr = vs + (kk * 8 + t) * LC_LDV + g;
#pragma unroll
        for (int n = 0; n < LC_TC_DK; ++n) {
            lc_mma_3xtf32(st.o[n], ph, pl, vr[n * 8], vr[4 * LC_LDV + n * 8]);
        }
    }
}
#endif  // LC_TC

// part_acc: [tiles][splits][BLOCK_M][HEAD_DIM_P], part_ml: [tiles][splits][2][BLOCK_M],
// counters: [tiles] ints, zero before the first launch; the merging block resets its counter.
extern "C" __global__ void __launch_bounds__(128, MIN_BLOCKS)
lc_attention_flash(const io_t* __restrict__ q, const io_t* __restrict__ k,
                   const io_t* __restrict__ v, io_t* __restrict__ out, int seq, int d,
                   int causal, acc_t scale, acc_t out_scale, acc_t out_bias, int relu,
                   acc_t* __restrict__ part_acc, acc_t* __restrict__ part_ml,
                   int* __restrict__ counters) {
    extern __shared__ __align__(16) unsigned char lc_smem_raw[];
    acc_t* qs = reinterpret_cast<acc_t*>(lc_smem_raw);
    acc_t* ks = qs + LC_BLOCK_M * LC_LDK;
    acc_t* ps = ks;
    acc_t* vs = ks + LC_KP_ELEMS;
    __shared__ int is_last;

    const int tid = threadIdx.x;
    const int tx = tid & 7;
    const int ty = tid >> 3;
    const int splits = gridDim.x;
    const int split = blockIdx.x;
    // Heaviest (latest, under a causal mask) query tiles are scheduled first.
    const int tile = gridDim.y - 1 - blockIdx.y;
    const int q0 = tile * LC_BLOCK_M;
    const int kv_end = causal ? min(seq, q0 + LC_BLOCK_M) : seq;
    const int nk = (kv_end + LC_BLOCK_N - 1) / LC_BLOCK_N;
    const int kt_begin = (int)(((long long)split * nk) / splits);
    const int kt_end = (int)(((long long)(split + 1) * nk) / splits);

    acc_t m_run[ROWS_PT], l_run[ROWS_PT];
    acc4 acc[ROWS_PT][LC_NG] = {};
#pragma unroll
    for (int a = 0; a < ROWS_PT; ++a) {
        m_run[a] = LC_NEG_INF;
        l_run[a] = (acc_t)0;
    }

#if LC_TC
    {
        const int lane = tid & 31;
        const int g = lane >> 2, t = lane & 3;
        const int wrow = (tid >> 5) * 16;
        lc_tc_state st;
#pragma unroll
        for (int n = 0; n < LC_TC_DK; ++n) st.o[n][0] = st.o[n][1] = st.o[n][2] = st.o[n][3] = 0.f;
        st.m[0] = st.m[1] = LC_NEG_INF;
        st.l[0] = st.l[1] = 0.f;
        if (kt_begin < kt_end) {
            lc_load_tile<LC_BLOCK_M, HEAD_DIM_P, LC_LDK>(qs, q, q0, seq, d,
                                                         scale * (acc_t)LC_LOG2E, tid);
            __syncthreads();
            lc_tc_load_q(st, qs, wrow, g, t);
        }
        for (int kt = kt_begin; kt < kt_end; ++kt) {
            const int key0 = kt * LC_BLOCK_N;
            __syncthreads();  // the previous tile's K and V are no longer read
            lc_load_tile<LC_BLOCK_N, HEAD_DIM_P, LC_LDK>(ks, k, key0, seq, d, (acc_t)1, tid);
            lc_load_tile<LC_BLOCK_N, HEAD_DIM_P, LC_LDV>(vs, v, key0, seq, d, (acc_t)1, tid);
            __syncthreads();
            const bool need_mask = (causal && key0 + LC_BLOCK_N - 1 > q0) ||
                                   key0 + LC_BLOCK_N > seq;
            lc_tc_tile(st, ks, vs, key0, q0 + wrow, seq, causal, need_mask, lane);
        }
        // Row sums over the quad, then the state goes through shared memory (Q's tile) into
        // the SIMT layout the epilogue below reads (rows ty + 16 a, columns g * 32 + tx * 4).
        __shared__ float tc_ml[2 * LC_BLOCK_M];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            st.l[h] += __shfl_xor_sync(0xffffffffu, st.l[h], 1);
            st.l[h] += __shfl_xor_sync(0xffffffffu, st.l[h], 2);
        }
        __syncthreads();  // every warp is done with Q, K and V
#pragma unroll
        for (int n = 0; n < LC_TC_DK; ++n) {
            float* r0 = qs + (wrow + g) * LC_LDK + n * 8 + 2 * t;
            r0[0] = st.o[n][0];
            r0[1] = st.o[n][1];
            r0[8 * LC_LDK] = st.o[n][2];
            r0[8 * LC_LDK + 1] = st.o[n][3];
        }
        if (t == 0) {
            tc_ml[wrow + g] = st.m[0];
            tc_ml[wrow + g + 8] = st.m[1];
            tc_ml[LC_BLOCK_M + wrow + g] = st.l[0];
            tc_ml[LC_BLOCK_M + wrow + g + 8] = st.l[1];
        }
        __syncthreads();
#pragma unroll
        for (int a = 0; a < ROWS_PT; ++a) {
            const int r = ty + 16 * a;
            m_run[a] = tc_ml[r];
            l_run[a] = tc_ml[LC_BLOCK_M + r];
#pragma unroll
            for (int gg = 0; gg < LC_NG; ++gg) acc[a][gg] = lc_ld4<false>(qs + r * LC_LDK + gg * 32 + tx * 4);
        }
    }
#else
    if (kt_begin < kt_end) {
        lc_load_tile<LC_BLOCK_M, HEAD_DIM_P, LC_LDK>(qs, q, q0, seq, d,
                                                     scale * (acc_t)LC_LOG2E, tid);
    }
    for (int kt = kt_begin; kt < kt_end; ++kt) {
        const int key0 = kt * LC_BLOCK_N;
        __syncthreads();  // the previous tile's K/P and V are no longer read
        lc_load_tile<LC_BLOCK_N, HEAD_DIM_P, LC_LDK>(ks, k, key0, seq, d, (acc_t)1, tid);
        lc_load_tile<LC_BLOCK_N, HEAD_DIM_P, LC_LDV>(vs, v, key0, seq, d, (acc_t)1, tid);
        __syncthreads();

        acc_t s[ROWS_PT][KEYS_PT] = {};
        LC_UNROLL(QK_UNROLL)
        for (int c = 0; c < HEAD_DIM_P; c += 4) {
            acc4 qa[ROWS_PT];
#pragma unroll
            for (int a = 0; a < ROWS_PT; ++a) {
                qa[a] = lc_ld4<false>(qs + (ty + 16 * a) * LC_LDK + c);
            }
#pragma unroll
            for (int b = 0; b < KEYS_PT; ++b) {
                const acc4 kb = lc_ld4<false>(ks + (tx + 8 * b) * LC_LDK + c);
#pragma unroll
                for (int a = 0; a < ROWS_PT; ++a)
#pragma unroll
                    for (int e = 0; e < 4; ++e) s[a][b] = fma(qa[a].v[e], kb.v[e], s[a][b]);
            }
        }
        __syncthreads();  // K is read by every warp; P overwrites it next

        const bool diagonal = causal && key0 + LC_BLOCK_N - 1 > q0;
        const bool need_mask = diagonal || key0 + LC_BLOCK_N > seq;
#pragma unroll
        for (int a = 0; a < ROWS_PT; ++a) {
            const int row = q0 + ty + 16 * a;
            acc_t mx = LC_NEG_INF;
#pragma unroll
            for (int b = 0; b < KEYS_PT; ++b) {
                const int key = key0 + tx + 8 * b;
                if (need_mask && (key >= seq || (causal && key > row))) s[a][b] = LC_NEG_INF;
                mx = fmax(mx, s[a][b]);
            }
            const acc_t m_new = fmax(m_run[a], lc_row_reduce8<true>(mx));
            const acc_t m_use = (m_new == LC_NEG_INF) ? (acc_t)0 : m_new;
            const acc_t alpha = exp2(m_run[a] - m_use);
            acc_t sum = (acc_t)0;
#pragma unroll
            for (int b = 0; b < KEYS_PT; ++b) {
                const acc_t p = exp2(s[a][b] - m_use);
                ps[(ty + 16 * a) * LC_LDP + tx + 8 * b] = p;
                sum += p;
            }
            l_run[a] = l_run[a] * alpha + lc_row_reduce8<false>(sum);
            m_run[a] = m_new;
#pragma unroll
            for (int g = 0; g < LC_NG; ++g)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[a][g].v[e] *= alpha;
        }
        // P rows of this warp were written by this warp only.
        __syncwarp();

        LC_UNROLL(PV_UNROLL)
        for (int j = 0; j < LC_BLOCK_N; j += 4) {
            acc4 p[ROWS_PT];
#pragma unroll
            for (int a = 0; a < ROWS_PT; ++a) p[a] = lc_ld4<false>(ps + (ty + 16 * a) * LC_LDP + j);
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
                for (int g = 0; g < LC_NG; ++g) {
                    acc4 og[ROWS_PT];
#pragma unroll
                    for (int a = 0; a < ROWS_PT; ++a) og[a] = acc[a][g];
                    lc_pv4<ROWS_PT>(og, p, lc_ld4<false>(vs + (j + jj) * LC_LDV + g * 32 + tx * 4),
                                    jj, diagonal);
#pragma unroll
                    for (int a = 0; a < ROWS_PT; ++a) acc[a][g] = og[a];
                }
            }
        }
    }

#endif  // LC_TC

    if (splits == 1) {
#pragma unroll
        for (int a = 0; a < ROWS_PT; ++a) {
            const int row = q0 + ty + 16 * a;
            const acc_t il = (l_run[a] > (acc_t)0) ? (acc_t)1 / l_run[a] : (acc_t)0;
#pragma unroll
            for (int g = 0; g < LC_NG; ++g) {
                const int c = g * 32 + tx * 4;
                if (row < seq && c < d) {
                    lc_store_out4(out, row, c, d, acc[a][g], il, out_scale, out_bias, relu);
                }
            }
        }
        return;
    }

    // Split-KV: publish this block's partial state, then the last block of the tile merges.
    const size_t slot = (size_t)tile * splits + split;
#pragma unroll
    for (int a = 0; a < ROWS_PT; ++a) {
        const int r = ty + 16 * a;
#pragma unroll
        for (int g = 0; g < LC_NG; ++g) {
            lc_st4<true>(part_acc + (slot * LC_BLOCK_M + r) * HEAD_DIM_P + g * 32 + tx * 4,
                         acc[a][g]);
        }
        if (tx == 0) {
            __stcg(part_ml + slot * 2 * LC_BLOCK_M + r, m_run[a]);
            __stcg(part_ml + slot * 2 * LC_BLOCK_M + LC_BLOCK_M + r, l_run[a]);
        }
    }
    __threadfence();  // partials are visible device-wide before the counter moves
    __syncthreads();
    if (tid == 0) is_last = atomicAdd(counters + tile, 1) == splits - 1;
    __syncthreads();
    if (!is_last) return;
    __threadfence();

    // The merge reads LC_MERGE_B splits' partials per round (all loads issued before any use):
    // a round trip to L2 per round rather than per split.
    const acc_t* ml = part_ml + (size_t)tile * splits * 2 * LC_BLOCK_M;
#pragma unroll
    for (int a = 0; a < ROWS_PT; ++a) {
        const int r = ty + 16 * a;
        if (q0 + r >= seq) continue;
        acc_t m_all = LC_NEG_INF;
        for (int i0 = 0; i0 < splits; i0 += 8) {
            acc_t mv[8];
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                mv[u] = i0 + u < splits ? __ldcg(ml + (i0 + u) * 2 * LC_BLOCK_M + r) : LC_NEG_INF;
            }
#pragma unroll
            for (int u = 0; u < 8; ++u) m_all = fmax(m_all, mv[u]);
        }
        acc_t l_all = (acc_t)0;
        acc4 o[LC_NG] = {};
        for (int i0 = 0; i0 < splits; i0 += LC_MERGE_B) {
            acc_t mi[LC_MERGE_B], li[LC_MERGE_B];
            acc4 t[LC_MERGE_B][LC_NG];
#pragma unroll
            for (int u = 0; u < LC_MERGE_B; ++u) {
                const int i = i0 + u;
                const bool live = i < splits;
                mi[u] = live ? __ldcg(ml + i * 2 * LC_BLOCK_M + r) : LC_NEG_INF;
                li[u] = live ? __ldcg(ml + i * 2 * LC_BLOCK_M + LC_BLOCK_M + r) : (acc_t)0;
                const acc_t* src = part_acc + (((size_t)tile * splits + (live ? i : 0)) * LC_BLOCK_M
                                               + r) * HEAD_DIM_P + tx * 4;
#pragma unroll
                for (int g = 0; g < LC_NG; ++g) {
                    t[u][g] = live ? lc_ld4<true>(src + g * 32)
                                   : acc4{{(acc_t)0, (acc_t)0, (acc_t)0, (acc_t)0}};
                }
            }
#pragma unroll
            for (int u = 0; u < LC_MERGE_B; ++u) {
                if (mi[u] == LC_NEG_INF) continue;  // an empty split contributes nothing
                const acc_t w = exp2(mi[u] - m_all);
                l_all += w * li[u];
#pragma unroll
                for (int g = 0; g < LC_NG; ++g)
#pragma unroll
                    for (int e = 0; e < 4; ++e) o[g].v[e] = fma(w, t[u][g].v[e], o[g].v[e]);
            }
        }
        const acc_t il = (l_all > (acc_t)0) ? (acc_t)1 / l_all : (acc_t)0;
#pragma unroll
        for (int g = 0; g < LC_NG; ++g) {
            const int c = g * 32 + tx * 4;
            if (c < d) lc_store_out4(out, q0 + r, c, d, o[g], il, out_scale, out_bias, relu);
        }
    }
    if (tid == 0) counters[tile] = 0;  // ready for the next launch (and graph replays)
}

#endif  // LC_ROWS_ONLY

// lc_attention_rows: short sequences (seq <= 32 * KPL, head_dim <= 32 * DPL). One warp per
// query row, RW_WARPS rows per block; the block stages the keys and values its rows can see
// in shared memory once. Lane j scores keys j, j + 32, ... against the row (held in shared
// memory, read as a broadcast), the row's max and sum come from warp shuffles, and lane j
// accumulates output dims j, j + 32, ... over the probabilities (another broadcast). No
// split, no scratch, one launch; the postprocess is fused. grid = ceil(seq / RW_WARPS).
//   KPL   keys per lane (1..8)        DPL   dims per lane (1..4)
//   WRAP  1: q, k and v are one flat buffer of `period` values read cyclically from offsets
//         q_base, k_base, v_base (the integrated conv -> attention path packs Q, K, V this
//         way, so no packing kernel runs); 0: three [seq, d] arrays, offsets unused.
//   RVEC  1 (float32, d % 4 == 0, 16-byte aligned k and v; with WRAP, a 16-byte aligned
//         buffer whose period and offsets are multiples of 4, so no 4-value group straddles
//         the wrap): keys and values are staged 16 bytes per load, a quarter of the load
//         instructions and round trips.
// Shared memory: (seq * (d | 1) + 3 + seq * d + RW_WARPS * 32 * (KPL + DPL)) * sizeof(acc_t).
#ifndef KPL
#define KPL 4
#endif
#ifndef DPL
#define DPL 2
#endif
#ifndef WRAP
#define WRAP 0
#endif
#ifndef RVEC
#define RVEC 0
#endif
#if RVEC && LC_DTYPE != 0
#error "RVEC needs float32"
#endif
#define RW_WARPS 8
#define RW_UNROLL 8

__device__ __forceinline__ acc_t lc_rows_ld(const io_t* __restrict__ p, long long base,
                                            long long e, long long period) {
#if WRAP
    // The host passes period < 2^31 and offsets below it: 32-bit modulo (64-bit is emulated).
    return lc_to_acc(p[(unsigned)(base + e) % (unsigned)period]);
#else
    return lc_to_acc(p[e]);
#endif
}

#if RVEC
// The 4 values of key/value pack i (values 4 i .. 4 i + 3 of a [keys, d] operand at base).
__device__ __forceinline__ float4 lc_rows_ld4(const float* __restrict__ p, long long base, int i,
                                              long long period) {
#if WRAP
    // base and period are multiples of 4: the pack starts aligned and never straddles the wrap.
    return __ldg(reinterpret_cast<const float4*>(p + (unsigned)(base + 4LL * i) %
                                                         (unsigned)period));
#else
    return __ldg(reinterpret_cast<const float4*>(p) + i);
#endif
}
#endif

__device__ __forceinline__ acc_t lc_warp_max(acc_t x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

__device__ __forceinline__ acc_t lc_warp_sum(acc_t x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

extern "C" __global__ void __launch_bounds__(RW_WARPS * 32)
lc_attention_rows(const io_t* __restrict__ q, const io_t* __restrict__ k,
                  const io_t* __restrict__ v, io_t* __restrict__ out, int seq, int d,
                  int causal, acc_t scale, acc_t out_scale, acc_t out_bias, int relu,
                  long long q_base, long long k_base, long long v_base, long long period) {
    extern __shared__ __align__(16) unsigned char lc_smem_raw[];
    const int ldk = d | 1;  // odd row stride: lanes reading one column of K hit distinct banks
    acc_t* ks = reinterpret_cast<acc_t*>(lc_smem_raw);
    acc_t* vs = ks + ((seq * ldk + 3) & ~3);  // 16-byte aligned rows when d % 4 == 0
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    acc_t* ps = vs + seq * d + warp * 32 * (KPL + DPL);
    acc_t* qs = ps + 32 * KPL;

    const int row0 = blockIdx.x * RW_WARPS;
    const int row_end = min(seq, row0 + RW_WARPS);
    const int keys = causal ? row_end : seq;  // keys any row of this block can see
#if RVEC
    // 16 bytes per load: each thread issues RW_UNROLL pairs before its first store.
    {
        const int w4 = d >> 2;
        const int total = keys * w4;
        for (int i0 = tid; i0 < total; i0 += RW_WARPS * 32 * RW_UNROLL) {
            float4 kr[RW_UNROLL], vr[RW_UNROLL];
#pragma unroll
            for (int u = 0; u < RW_UNROLL; ++u) {
                const int i = i0 + u * RW_WARPS * 32;
                if (i < total) {
                    kr[u] = lc_rows_ld4(k, k_base, i, period);
                    vr[u] = lc_rows_ld4(v, v_base, i, period);
                }
            }
#pragma unroll
            for (int u = 0; u < RW_UNROLL; ++u) {
                const int i = i0 + u * RW_WARPS * 32;
                if (i < total) {
                    const int r = i / w4;
                    const int c = (i - r * w4) << 2;
                    acc_t* kd = ks + r * ldk + c;  // odd row stride: four scalar stores
                    kd[0] = kr[u].x;
                    kd[1] = kr[u].y;
                    kd[2] = kr[u].z;
                    kd[3] = kr[u].w;
                    *reinterpret_cast<float4*>(vs + r * d + c) = vr[u];
                }
            }
        }
    }
#else
    // Staging is latency-bound (one block per SM, few warps): each warp walks rows, each lane
    // columns, and every thread issues RW_UNROLL pairs of loads before its first store. No
    // division per element but WRAP's 32-bit modulo of the offset.
    for (int r0 = warp; r0 < keys; r0 += RW_WARPS * RW_UNROLL) {
        for (int c = lane; c < d; c += 32) {
            acc_t kr[RW_UNROLL], vr[RW_UNROLL];
#pragma unroll
            for (int u = 0; u < RW_UNROLL; ++u) {
                const int r = r0 + u * RW_WARPS;
                if (r < keys) {
                    const long long e = (long long)r * d + c;
                    kr[u] = lc_rows_ld(k, k_base, e, period);
                    vr[u] = lc_rows_ld(v, v_base, e, period);
                }
            }
#pragma unroll
            for (int u = 0; u < RW_UNROLL; ++u) {
                const int r = r0 + u * RW_WARPS;
                if (r < keys) {
                    ks[r * ldk + c] = kr[u];
                    vs[r * d + c] = vr[u];
                }
            }
        }
    }
#endif
    __syncthreads();

    const int row = row0 + warp;
    if (row >= seq) return;
    const acc_t qmul = scale * (acc_t)LC_LOG2E;
    for (int t = lane; t < d; t += 32) {
        qs[t] = lc_rows_ld(q, q_base, (long long)row * d + t, period) * qmul;
    }
    __syncwarp();

    const int kend = causal ? row + 1 : seq;
    acc_t s[KPL];
#pragma unroll
    for (int i = 0; i < KPL; ++i) s[i] = (acc_t)0;
#pragma unroll 4
    for (int t = 0; t < d; ++t) {
        const acc_t qv = qs[t];
#pragma unroll
        for (int i = 0; i < KPL; ++i) {
            const int key = lane + 32 * i;
            if (key < kend) s[i] += qv * ks[key * ldk + t];
        }
    }
    acc_t m = LC_NEG_INF;
#pragma unroll
    for (int i = 0; i < KPL; ++i) {
        if (lane + 32 * i < kend) m = max(m, s[i]);
    }
    m = lc_warp_max(m);
    acc_t l = (acc_t)0;
#pragma unroll
    for (int i = 0; i < KPL; ++i) {
        const int key = lane + 32 * i;
        const acc_t p = key < kend ? exp2(s[i] - m) : (acc_t)0;
        l += p;
        ps[key] = p;
    }
    l = lc_warp_sum(l);
    __syncwarp();

    acc_t o[DPL];
#pragma unroll
    for (int j = 0; j < DPL; ++j) o[j] = (acc_t)0;
#pragma unroll 4
    for (int key = 0; key < kend; ++key) {
        const acc_t p = ps[key];
        const acc_t* vrow = vs + key * d;
#pragma unroll
        for (int j = 0; j < DPL; ++j) {
            const int t = lane + 32 * j;
            if (t < d) o[j] += p * vrow[t];
        }
    }
    const acc_t inv = (acc_t)1 / l;
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
        const int t = lane + 32 * j;
        if (t < d) out[(size_t)row * d + t] = lc_from_acc(lc_post(o[j] * inv, out_scale,
                                                                  out_bias, relu));
    }
}
