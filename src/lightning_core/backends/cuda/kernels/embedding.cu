// Embedding lookup: out[i, :] = table[ids[i], :] for int64 ids (range-checked on the host).
//
// One variant, templated on the copy unit U (the row is moved as raw bytes, so the dtype does
// not matter): uint4 (16 bytes) when the row size and both pointers allow it, else uint2,
// unsigned int or unsigned short. blockDim is (tx, ty): tx threads stride over one row's
// units and ty rows share a block, so short rows still fill a block; rows are walked with a
// grid-stride loop over blockIdx.x.
template <typename U>
__global__ void lc_embedding_gather(const long long* __restrict__ ids,
                                    const U* __restrict__ table, U* __restrict__ out,
                                    long long n_ids, long long units) {
    for (long long r = (long long)blockIdx.x * blockDim.y + threadIdx.y; r < n_ids;
         r += (long long)gridDim.x * blockDim.y) {
        const U* src = table + ids[r] * units;
        U* dst = out + r * units;
        for (long long c = threadIdx.x; c < units; c += blockDim.x) dst[c] = src[c];
    }
}
