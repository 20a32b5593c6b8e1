// A fixed pool of workers for data-parallel loops. Size from SLIPSTREAM_NUM_THREADS, default all
// cores. One parallel region runs at a time (callers from several host threads take turns); a
// parallel_for called from inside a worker runs inline, so kernels may nest freely.
#pragma once

#include <cstdint>
#include <functional>

namespace slip {

int num_threads();
void set_num_threads(int n);

// Calls body(begin, end) over [0, n) split into chunks of at least `grain` items; blocks until
// all chunks finish. An exception in any chunk is rethrown on the calling thread.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> &body);

}  // namespace slip
