// CPU feature detection and the instruction-set level kernels dispatch on.
#pragma once

#include <cstdint>

#include "slipstream.h"

namespace slip {

uint32_t cpu_features();   // slip_cpu_feature bits, detected once
slip_isa isa_detected();   // best level the CPU (and OS, via XCR0) supports
slip_isa isa_active();     // the level in force: detected, lowered by SLIPSTREAM_ISA or slip_set_isa
void set_isa_active(slip_isa isa);

}  // namespace slip
