// The quantization ABI's edges: packing layouts and round trips, the Hadamard transform, and
// every refused argument with its "expected X for <argument>, got Y" sentence.
#include <cmath>
#include <cstring>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "quant-ref.h"

namespace {

void test_nibbles() {
    std::mt19937 rng(5);
    std::vector<uint8_t> codes(1000), packed(500), back(1000);
    for (auto &c : codes) c = rng() & 0x0F;
    CHECK_OK(slip_pack_nibbles(codes.data(), packed.data(), 1000));
    for (int i = 0; i < 500; ++i) CHECK(packed[i] == (codes[2 * i] | (codes[2 * i + 1] << 4)));
    CHECK_OK(slip_unpack_nibbles(packed.data(), back.data(), 1000));
    CHECK(back == codes);
    CHECK_FAILS(slip_pack_nibbles(codes.data(), packed.data(), 7), SLIP_STATUS_INVALID_ARGUMENT, "even count for n (two codes per byte), got 7");
    codes[9] = 0x10;
    CHECK_FAILS(slip_pack_nibbles(codes.data(), packed.data(), 10), SLIP_STATUS_INVALID_ARGUMENT, "got 16 at index 9");
}

void test_int_ct(int bits, int64_t rows, int64_t cols) {
    std::mt19937 rng(bits * 100 + cols);
    const int lo = -(1 << (bits - 1)), span = 1 << bits;
    std::vector<int8_t> v(rows * cols), back(rows * cols);
    for (auto &x : v) x = static_cast<int8_t>(lo + static_cast<int>(rng() % span));
    const int64_t words = (cols * bits + 31) / 32;
    std::vector<int32_t> packed(rows * words, -1);
    CHECK_OK(slip_pack_int_ct(v.data(), packed.data(), rows, cols, bits));
    for (int64_t r = 0; r < rows; ++r)  // element c at bit offset bits*c of the row's stream
        for (int64_t c = 0; c < cols; ++c) {
            const uint32_t w = static_cast<uint32_t>(packed[r * words + c * bits / 32]);
            const int field = static_cast<int>((w >> (c * bits % 32)) & (span - 1));
            CHECK(field == v[r * cols + c] - lo);
        }
    CHECK_OK(slip_unpack_int_ct(packed.data(), back.data(), rows, cols, bits));
    CHECK(back == v);
}

void test_int_ct_errors() {
    int8_t v[2] = {8, 0};
    int32_t p[1];
    CHECK_FAILS(slip_pack_int_ct(v, p, 1, 2, 3), SLIP_STATUS_INVALID_ARGUMENT, "expected 4 or 8 for bits, got 3");
    CHECK_FAILS(slip_pack_int_ct(v, p, 1, 2, 4), SLIP_STATUS_INVALID_ARGUMENT, "[-8, 7] for values, got 8 at index 0");
    CHECK_FAILS(slip_pack_int_ct(nullptr, p, 1, 2, 8), SLIP_STATUS_INVALID_ARGUMENT, "for values");
}

void test_hadamard() {
    for (int64_t n : {16, 32, 64, 128, 256}) {
        const int64_t rows = 3, k = 2 * n;
        std::vector<float> x = ref::outlier_data(rows * k, n), y = x;
        slip_tensor t = ref::tensor(y.data(), SLIP_DTYPE_F32, {rows, k});
        CHECK_OK(slip_hadamard(&t, n));
        // Float64 Sylvester reference H[i][j] = (-1)^popcount(i & j) / sqrt(n). Bound: each of
        // the log2(n) butterfly stages and the final scale rounds once (unit roundoff 2^-24)
        // on partial sums bounded by sum|x_block|, so |err| <= (log2(n) + 1) 2^-24 sum|x| / sqrt(n).
        double worst = 0;
        for (int64_t b = 0; b < rows * k / n; ++b) {
            const float *xb = x.data() + b * n;
            double l1 = 0;
            for (int64_t j = 0; j < n; ++j) l1 += std::fabs(xb[j]);
            const double bound = (std::log2(double(n)) + 1) * 0x1p-24 * l1 / std::sqrt(double(n));
            for (int64_t i = 0; i < n; ++i) {
                double s = 0;
                for (int64_t j = 0; j < n; ++j) s += (__builtin_popcountll(i & j) & 1 ? -1.0 : 1.0) * xb[j];
                const double err = std::fabs(y[b * n + i] - s / std::sqrt(double(n)));
                worst = std::max(worst, err / bound);
            }
        }
        CHECK_MSG(worst <= 1.0, "hadamard %lld: error %.3g of the bound", static_cast<long long>(n), worst);
        // The portable butterflies and the AVX-512 ones (when the CPU has them) are the same
        // additions in the same order: bit-identical.
        {
            std::vector<float> z = x;
            slip_tensor zt = ref::tensor(z.data(), SLIP_DTYPE_F32, {rows, k});
            slip_capabilities caps;
            CHECK_OK(slip_get_capabilities(&caps));
            CHECK_OK(slip_set_isa(SLIP_ISA_PORTABLE));
            CHECK_OK(slip_hadamard(&zt, n));
            CHECK_OK(slip_set_isa(static_cast<slip_isa>(caps.isa_active)));
            CHECK_MSG(std::memcmp(z.data(), y.data(), z.size() * sizeof(float)) == 0, "hadamard %lld: ISA levels differ",
                      static_cast<long long>(n));
        }
        // Twice is the identity: each pass adds at most (log2(n) + 1) 2^-24 ||x_block||_2 in
        // the L2 norm, and the orthonormal transform does not amplify the first pass's error.
        CHECK_OK(slip_hadamard(&t, n));
        for (int64_t b = 0; b < rows * k / n; ++b) {
            double e2 = 0, x2 = 0;
            for (int64_t i = b * n; i < (b + 1) * n; ++i) {
                e2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
                x2 += double(x[i]) * x[i];
            }
            CHECK_MSG(std::sqrt(e2) <= 2 * (std::log2(double(n)) + 1) * 0x1p-24 * std::sqrt(x2),
                      "hadamard %lld twice, block %lld", static_cast<long long>(n), static_cast<long long>(b));
        }
    }
    std::vector<float> x(48);
    slip_tensor t = ref::tensor(x.data(), SLIP_DTYPE_F32, {48});
    CHECK_FAILS(slip_hadamard(&t, 24), SLIP_STATUS_INVALID_ARGUMENT, "for block, got 24");
    CHECK_FAILS(slip_hadamard(&t, 32), SLIP_STATUS_SHAPE_MISMATCH, "divisible by block 32 for x, got [48]");
}

void test_quantize_errors() {
    std::vector<float> x(4 * 32, 0.5f);
    std::vector<uint8_t> codes(4 * 16), scales(4 * 2);
    float global = 0;
    slip_tensor xt = ref::tensor(x.data(), SLIP_DTYPE_F32, {4, 32});
    slip_tensor ct = ref::tensor(codes.data(), SLIP_DTYPE_U8, {4, 16});
    slip_tensor st = ref::tensor(scales.data(), SLIP_DTYPE_F8_E4M3, {4, 2});
    slip_tensor gt = ref::tensor(&global, SLIP_DTYPE_F32, {1});
    slip_quant_params p;
    CHECK_OK(slip_quant_params_init(&p, SLIP_FORMAT_NVFP4));
    CHECK_OK(slip_quantize(&xt, &p, &ct, &st, &gt));

    CHECK_FAILS(slip_quantize(&xt, nullptr, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "for params");
    slip_tensor bad = ref::tensor(codes.data(), SLIP_DTYPE_I8, {4, 16});
    CHECK_FAILS(slip_quantize(&xt, &p, &bad, &st, &gt), SLIP_STATUS_DTYPE_MISMATCH, "expected dtype U8 for codes, got I8");
    bad = ref::tensor(scales.data(), SLIP_DTYPE_F8_E4M3, {4, 1});
    CHECK_FAILS(slip_quantize(&xt, &p, &ct, &bad, &gt), SLIP_STATUS_SHAPE_MISMATCH, "expected shape [4, 2] for scales, got [4, 1]");
    CHECK_FAILS(slip_quantize(&xt, &p, &ct, &st, nullptr), SLIP_STATUS_INVALID_ARGUMENT, "for global");
    bad = ref::tensor(x.data(), SLIP_DTYPE_F32, {4, 24});
    CHECK_FAILS(slip_quantize(&bad, &p, &ct, &st, &gt), SLIP_STATUS_SHAPE_MISMATCH, "divisible by 16 for x");
    bad = ref::tensor(x.data(), SLIP_DTYPE_F16, {4, 32});
    CHECK_FAILS(slip_quantize(&bad, &p, &ct, &st, &gt), SLIP_STATUS_DTYPE_MISMATCH, "expected dtype F32 for x, got F16");

    x[37] = NAN;
    CHECK_FAILS(slip_quantize(&xt, &p, &ct, &st, &gt), SLIP_STATUS_NON_FINITE, "NaN at index 37 (row 1, column 5)");
    x[37] = -INFINITY;
    CHECK_FAILS(slip_quantize(&xt, &p, &ct, &st, &gt), SLIP_STATUS_NON_FINITE, "-Inf at index 37");
    x[37] = 0.5f;

    slip_quant_params q = p;
    q.group_size = 32;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "expected 16 for params.group_size (fixed by NVFP4), got 32");
    q = p;
    q.format = 42;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "for params.format, got 42");
    q.format = SLIP_FORMAT_F32;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "got F32");
    q = p;
    q.rounding = 3;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "for params.rounding, got 3");
    q = p;
    q.flags = 0x10;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "params.flags, got 0x10");
    q = p;
    q.granularity = SLIP_GRANULARITY_ROW;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "got ROW");
    q = p;
    q.global_scale = NAN;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "params.global_scale");

    CHECK_OK(slip_quant_params_init(&q, SLIP_FORMAT_NVFP4_TJ2));
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_SHAPE_MISMATCH, "divisible by 128 for x");
    CHECK_OK(slip_quant_params_init(&q, SLIP_FORMAT_INT8));
    q.global_scale = 2.0f;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "only NVFP4");
    CHECK_OK(slip_quant_params_init(&q, SLIP_FORMAT_INT8));
    q.granularity = SLIP_GRANULARITY_BLOCK;
    q.block_cols = 0;
    CHECK_FAILS(slip_quantize(&xt, &q, &ct, &st, &gt), SLIP_STATUS_INVALID_ARGUMENT, "params.block_cols");
    CHECK_FAILS(slip_quant_params_init(&q, static_cast<slip_quant_format>(8)), SLIP_STATUS_INVALID_ARGUMENT, "for format, got 8");

    // dequantize: the global scale of NVFP4 must be a usable divisor.
    std::vector<float> out(4 * 32);
    slip_tensor ot = ref::tensor(out.data(), SLIP_DTYPE_F32, {4, 32});
    global = 0.0f;
    CHECK_FAILS(slip_dequantize(&ct, &st, &gt, &p, &ot), SLIP_STATUS_INVALID_ARGUMENT, "global scale for global, got 0");
    bad = ref::tensor(out.data(), SLIP_DTYPE_F32, {4, 16});
    CHECK_FAILS(slip_dequantize(&ct, &st, &gt, &p, &bad), SLIP_STATUS_SHAPE_MISMATCH, "expected shape [4, 8] for codes, got [4, 16]");
}

void test_shapes() {
    slip_quant_params p;
    int32_t nd[3];
    int64_t sh[3][SLIP_MAX_DIMS];
    const int64_t shape[3] = {2, 5, 256};  // leading dimensions flatten into rows
    CHECK_OK(slip_quant_params_init(&p, SLIP_FORMAT_INT4));
    CHECK_OK(slip_quant_shapes(&p, 3, shape, &nd[0], sh[0], &nd[1], sh[1], &nd[2], sh[2]));
    CHECK(nd[0] == 2 && sh[0][0] == 10 && sh[0][1] == 32 && nd[1] == 2 && sh[1][1] == 2 && nd[2] == 0);
    CHECK_OK(slip_quant_params_init(&p, SLIP_FORMAT_NVFP4_TJ2));
    CHECK_OK(slip_quant_shapes(&p, 3, shape, &nd[0], sh[0], &nd[1], sh[1], &nd[2], sh[2]));
    CHECK(sh[0][1] == 128 && sh[1][1] == 16 && nd[2] == 2 && sh[2][0] == 10 && sh[2][1] == 2);
    CHECK_OK(slip_quant_params_init(&p, SLIP_FORMAT_FP8_E4M3));
    p.granularity = SLIP_GRANULARITY_BLOCK;
    CHECK_OK(slip_quant_shapes(&p, 3, shape, &nd[0], sh[0], &nd[1], sh[1], &nd[2], sh[2]));
    CHECK(nd[1] == 2 && sh[1][0] == 1 && sh[1][1] == 2);
    p.granularity = SLIP_GRANULARITY_TENSOR;
    CHECK_OK(slip_quant_shapes(&p, 3, shape, &nd[0], sh[0], &nd[1], sh[1], &nd[2], sh[2]));
    CHECK(nd[1] == 1 && sh[1][0] == 1);

    size_t needed = 0;
    slip_list_kernels(nullptr, 0, &needed);
    std::string names(needed, '\0');
    CHECK_OK(slip_list_kernels(names.data(), needed, &needed));
    for (const char *k : {"quantize", "dequantize", "element_codecs", "hadamard"})
        CHECK_MSG(names.find(k) != std::string::npos, "kernel %s not listed in %s", k, names.c_str());
}

}  // namespace

int main() {
    test_nibbles();
    for (int bits : {4, 8})
        for (int64_t cols : {1, 8, 13, 64}) test_int_ct(bits, 5, cols);
    test_int_ct_errors();
    test_hadamard();
    test_quantize_errors();
    test_shapes();
    return slip_test::report("test-quant-api");
}
