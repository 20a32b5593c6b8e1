// Register-only peak loops behind slip_bench_peak: what one thread's vector units can issue
// when nothing waits on memory, the ceiling the GEMM kernels are measured against.
#pragma once

#include <cstdint>

namespace slip::gemm {

// Chains (independent accumulators) per loop: 24 covers a 4-cycle FMA latency on 2 ports three
// times over, and leaves zmm registers for the two shared operands.
constexpr int kPeakChains = 24;

// Run `iters` iterations of kPeakChains dependent-chain instructions; the return value depends
// on every chain so the loop cannot be dropped.
float peak_fma_avx512(int64_t iters);      // vfmadd231ps zmm: 16 lanes x 2 flop each
int32_t peak_vnni_avx512(int64_t iters);   // vpdpbusd zmm: 16 lanes x 4 MACs x 2 ops each

}  // namespace slip::gemm
