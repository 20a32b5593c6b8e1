// Blocked orthonormal Walsh-Hadamard transform along the last dimension. Used before 4-bit
// quantization to spread channel outliers over a block (QuaRot; the block-128 online Hadamard of
// 6Bit-Diffusion, papers.md 1.1; TetraJet-v2's 16-point RHT, papers.md 2.1).
// Sylvester ordering, in place, n log n butterflies per block, then one scale by 1/sqrt(n)
// (exact for n = 16, 64, 256; rounded once for 32 and 128).
#include <algorithm>
#include <cmath>

#include "base/cpu.h"
#include "base/error.h"
#include "base/kernels.h"
#include "base/tensor.h"
#include "base/thread-pool.h"
#include "common.h"
#include "hadamard.h"

namespace slip::quant {
namespace {
const KernelName kRegistered("hadamard");
}  // namespace

void fwht_block(float *v, int64_t n, float scale) {
    for (int64_t h = 1; h < n; h *= 2)
        for (int64_t i = 0; i < n; i += 2 * h)
            for (int64_t j = i; j < i + h; ++j) {
                const float a = v[j], b = v[j + h];
                v[j] = a + b;
                v[j + h] = a - b;
            }
    for (int64_t i = 0; i < n; ++i) v[i] *= scale;
}

}  // namespace slip::quant

extern "C" SLIP_API slip_status slip_hadamard(slip_tensor *x, int64_t block) {
    using namespace slip;
    return guard([&] {
        const slip_tensor &t = require_cpu_dense(x, "x", SLIP_DTYPE_F32);
        if (block < 16 || block > 256 || (block & (block - 1)) != 0)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected 16, 32, 64, 128 or 256 for block, got %lld",
                        static_cast<long long>(block)));
        const Matrix m = as_matrix(t, "x");
        if (m.cols % block != 0)
            fail(SLIP_STATUS_SHAPE_MISMATCH,
                 format("expected a last dimension divisible by block %lld for x, got %s",
                        static_cast<long long>(block), shape_string(t).c_str()));
        const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(block)));
        float *data = data_as<float>(t);
        const int64_t nblocks = m.rows * (m.cols / block);
        const bool vec = isa_active() >= SLIP_ISA_AVX512;
        parallel_for(nblocks, std::max<int64_t>(1, 16384 / block), [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                vec ? quant::fwht_block_avx512(data + i * block, block, scale) : quant::fwht_block(data + i * block, block, scale);
        });
    });
}
