// SpargeAttention2 block-mask prediction on a validated Problem (sparse-api.cpp validates).
#pragma once

#include <cstdint>

#include "attention-common.h"

namespace slip::attn::sparse {

struct MaskCounts {
    int64_t kept = 0;     // pairs set to 1
    int64_t allowed = 0;  // pairs causality allows
};

// Writes mask (U8 [B, Hq, nQb, nKb], contiguous) for every (batch, query head).
MaskCounts predict(const Problem &pr, const slip_sparse_params &sp, uint8_t *mask);

}  // namespace slip::attn::sparse
