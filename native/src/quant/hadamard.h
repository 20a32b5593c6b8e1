// The blocked Walsh-Hadamard transform of one block, in place (hadamard.cpp); the AVX-512 twin
// (hadamard-avx512.cpp) for n in {16, ..., 256} is bit-identical.
#pragma once

#include <cstdint>

namespace slip::quant {

void fwht_block(float *v, int64_t n, float scale);
void fwht_block_avx512(float *v, int64_t n, float scale);

}  // namespace slip::quant
