#include "cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "error.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define SLIP_X86 1
#endif
#if defined(SLIP_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace slip {

namespace {

#ifdef SLIP_X86
uint64_t xgetbv0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

// Linux hands out AMX tile state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA, kernel 5.16+); the first tile instruction of one that did not is SIGILL.
bool os_permits_amx() {
#if defined(SLIP_X86) && defined(__linux__) && defined(SYS_arch_prctl)
    constexpr int kReqXcompPerm = 0x1023, kXtileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) == 0;
#else
    return false;
#endif
}

uint32_t detect_features() {
    uint32_t f = 0;
#ifdef SLIP_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const bool osxsave = c & (1u << 27);
    if (!osxsave) return 0;
    const uint64_t xcr0 = xgetbv0();
    const bool ymm_os = (xcr0 & 0x6) == 0x6;            // SSE + AVX state
    const bool zmm_os = (xcr0 & 0xE6) == 0xE6;          // + opmask, ZMM_Hi256, Hi16_ZMM
    const bool fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (ymm_os) {
        if (b & (1u << 5)) f |= SLIP_CPU_AVX2;
        if (fma) f |= SLIP_CPU_FMA;
        if (f16c) f |= SLIP_CPU_F16C;
    }
    if (zmm_os) {
        if (b & (1u << 16)) f |= SLIP_CPU_AVX512F;
        if (b & (1u << 30)) f |= SLIP_CPU_AVX512BW;
        if (b & (1u << 31)) f |= SLIP_CPU_AVX512VL;
        if (c & (1u << 11)) f |= SLIP_CPU_AVX512VNNI;
    }
    // AMX: the tile config and tile data state enabled in XCR0 (bits 17, 18), then the OS asked.
    const bool amx_cpu = (d & (1u << 24)) && (xcr0 & 0x60000) == 0x60000;
    if (amx_cpu && os_permits_amx()) {
        f |= SLIP_CPU_AMX_TILE;
        if (d & (1u << 22)) f |= SLIP_CPU_AMX_BF16;
        if (d & (1u << 25)) f |= SLIP_CPU_AMX_INT8;
    }
    unsigned a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) {
        if (zmm_os && (a1 & (1u << 5))) f |= SLIP_CPU_AVX512BF16;
        if (ymm_os && (a1 & (1u << 4))) f |= SLIP_CPU_AVXVNNI;
    }
#endif
    return f;
}

slip_isa level_from(uint32_t f) {
    const uint32_t avx2 = SLIP_CPU_AVX2 | SLIP_CPU_FMA | SLIP_CPU_F16C;
    const uint32_t avx512 = avx2 | SLIP_CPU_AVX512F | SLIP_CPU_AVX512BW | SLIP_CPU_AVX512VL;
    const uint32_t amx = avx512 | SLIP_CPU_AVX512VNNI | SLIP_CPU_AVX512BF16 | SLIP_CPU_AMX_TILE |
                         SLIP_CPU_AMX_BF16 | SLIP_CPU_AMX_INT8;
    if ((f & amx) == amx) return SLIP_ISA_AMX;
    if ((f & (avx512 | SLIP_CPU_AVX512VNNI)) == (avx512 | SLIP_CPU_AVX512VNNI))
        return SLIP_ISA_AVX512VNNI;
    if ((f & avx512) == avx512) return SLIP_ISA_AVX512;
    if ((f & avx2) == avx2) return SLIP_ISA_AVX2;
    return SLIP_ISA_PORTABLE;
}

slip_isa initial_active() {
    slip_isa best = level_from(cpu_features());
    const char *env = std::getenv("SLIPSTREAM_ISA");
    if (!env || !*env) return best;
    slip_isa want = best;
    if (!std::strcmp(env, "portable")) want = SLIP_ISA_PORTABLE;
    else if (!std::strcmp(env, "avx2")) want = SLIP_ISA_AVX2;
    else if (!std::strcmp(env, "avx512")) want = SLIP_ISA_AVX512;
    else if (!std::strcmp(env, "avx512vnni")) want = SLIP_ISA_AVX512VNNI;
    else if (!std::strcmp(env, "amx")) want = SLIP_ISA_AMX;
    // An unknown or too-high request keeps the detected level: loading must not fail here,
    // and slip_get_capabilities shows what is in force.
    return want < best ? want : best;
}

std::atomic<int> g_active{-1};

}  // namespace

uint32_t cpu_features() {
    static const uint32_t f = detect_features();
    return f;
}

slip_isa isa_detected() { return level_from(cpu_features()); }

slip_isa isa_active() {
    int v = g_active.load(std::memory_order_relaxed);
    if (v < 0) {
        v = initial_active();
        g_active.store(v, std::memory_order_relaxed);
    }
    return static_cast<slip_isa>(v);
}

void set_isa_active(slip_isa isa) { g_active.store(isa, std::memory_order_relaxed); }

}  // namespace slip

extern "C" SLIP_API slip_status slip_set_isa(slip_isa isa) {
    return slip::guard([&] {
        if (isa < SLIP_ISA_PORTABLE || isa > SLIP_ISA_AMX)
            slip::fail(SLIP_STATUS_INVALID_ARGUMENT,
                       slip::format("expected a slip_isa (0..4) for isa, got %d", isa));
        if (isa > slip::isa_detected())
            slip::fail(SLIP_STATUS_UNSUPPORTED,
                       slip::format("expected isa at most %d (what this CPU supports), got %d",
                                    slip::isa_detected(), isa));
        slip::set_isa_active(isa);
    });
}
