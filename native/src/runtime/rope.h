// Wan2.1's 3-D rotary position embedding over a (frames, rows, cols) patch grid.
// The head dim d is split over the three axes as (d - 4(d/6), 2(d/6), 2(d/6)) channels (44/42/42
// at d = 128); axis a with d_a channels rotates d_a/2 adjacent pairs (x0, x1) by pos_a * omega_j,
// omega_j = theta^(-2j/d_a), j < d_a/2, theta 10000: (x0, x1) -> (x0 c - x1 s, x0 s + x1 c).
// Tokens are in row-major grid order. Angles are computed in float64, then cos/sin rounded to
// FP32 (what the PyTorch model does).
#pragma once

#include <cstdint>
#include <vector>

namespace slip::runtime {

struct RopeTable {
    int64_t tokens = 0, pairs = 0;  // pairs = head_dim / 2
    std::vector<float> cos, sin;    // [tokens, pairs]
};

// grid: frames, rows, cols of patches; head_dim even.
RopeTable rope_table(const int64_t grid[3], int64_t head_dim, double theta = 10000.0);

// x: [batch, tokens, heads, head_dim] in place (the NHD layout of the attention call).
void rope_apply(float *x, int64_t batch, int64_t heads, const RopeTable &t);

}  // namespace slip::runtime
