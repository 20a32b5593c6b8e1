// slip_bench_peak: the register-only peak loops on every pool thread at once, timed by wall clock.
//
// Each pool thread takes one slot and repeats a fixed block of iterations until a shared
// deadline, so the count adapts to the machine and a late-starting thread simply contributes
// less. Ops per second = total iterations x ops per iteration / wall time of the region. A short
// untimed run first lets the cores settle at their AVX-512 frequency.
#include <atomic>
#include <chrono>
#include <cmath>

#include "../base/cpu.h"
#include "../base/error.h"
#include "../base/kernels.h"
#include "../base/tensor.h"
#include "../base/thread-pool.h"
#include "peak.h"

namespace {

#if defined(__x86_64__) || defined(_M_X64)
#define SLIP_PEAK_X86 1
#endif

slip::KernelName k_peak("bench_peak");

#ifdef SLIP_PEAK_X86
// The loops' results land here, so the compiler must run them.
std::atomic<int64_t> g_sink{0};

using Clock = std::chrono::steady_clock;

// One block is about 0.1 ms: fine enough to stop near the deadline, coarse enough that the clock
// read costs nothing.
constexpr int64_t kBlock = 4096;

double run_for(int32_t kind, double seconds) {
    using namespace slip;
    const int threads = num_threads();
    std::atomic<int64_t> blocks{0};
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    parallel_for(threads, 1, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
            int64_t mine = 0;
            int64_t acc = 0;
            do {
                acc += kind == 0 ? static_cast<int64_t>(gemm::peak_fma_avx512(kBlock))
                                 : static_cast<int64_t>(gemm::peak_vnni_avx512(kBlock));
                ++mine;
            } while (Clock::now() < deadline);
            blocks += mine;
            g_sink += acc;
        }
    });
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    // Ops of one iteration: kPeakChains instructions x 16 lanes x (FMA: 2 flop; vpdpbusd: 4 MACs
    // x 2 ops).
    const double per_iter = gemm::kPeakChains * 16.0 * (kind == 0 ? 2.0 : 8.0);
    return static_cast<double>(blocks.load()) * kBlock * per_iter / elapsed;
}
#endif

}  // namespace

extern "C" SLIP_API slip_status slip_bench_peak(int32_t kind, double seconds, double *ops_per_second) {
    return slip::guard([&] {
        using namespace slip;
        require_not_null(ops_per_second, "ops_per_second");
        *ops_per_second = 0.0;
        if (kind != 0 && kind != 1)
            fail(SLIP_STATUS_INVALID_ARGUMENT,
                 format("expected 0 (FP32 FMA) or 1 (INT8 VNNI) for kind, got %d", kind));
        if (!(std::isfinite(seconds) && seconds > 0.0 && seconds <= 60.0))
            fail(SLIP_STATUS_INVALID_ARGUMENT, format("expected seconds in (0, 60], got %g", seconds));
#ifdef SLIP_PEAK_X86
        const slip_isa need = kind == 0 ? SLIP_ISA_AVX512 : SLIP_ISA_AVX512VNNI;
        if (isa_active() < need)
            fail(SLIP_STATUS_UNSUPPORTED,
                 format("expected an active ISA level of at least %s for the %s peak loop, got level %d "
                        "(this CPU, or SLIPSTREAM_ISA / slip_set_isa, rules it out)",
                        kind == 0 ? "AVX512 (2)" : "AVX512VNNI (3)", kind == 0 ? "FP32 FMA" : "INT8 VNNI",
                        static_cast<int>(isa_active())));
        run_for(kind, std::min(0.05, seconds / 5.0));  // settle the clock; untimed
        *ops_per_second = run_for(kind, seconds);
#else
        fail(SLIP_STATUS_UNSUPPORTED, "expected an x86-64 CPU for the AVX-512 peak loops");
#endif
    });
}
