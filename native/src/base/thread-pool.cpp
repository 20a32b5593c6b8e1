#include "thread-pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "error.h"

namespace slip {

namespace {

thread_local bool tls_in_parallel = false;

// A forward pass is a few hundred short parallel regions. Waking a sleeping worker through a
// futex costs tens of microseconds on a VM, so workers and the caller spin this many pauses
// (~50 µs) on the shared counters before they block.
constexpr int kSpinPauses = 2000;

inline void cpu_pause() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#else
    std::this_thread::yield();
#endif
}

class Pool {
  public:
    explicit Pool(int n) { start(n); }
    ~Pool() { stop(); }

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    void resize(int n) {
        std::lock_guard<std::mutex> region(region_mutex_);
        stop();
        start(n);
    }

    void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> &body) {
        if (n <= 0) return;
        grain = std::max<int64_t>(grain, 1);
        const int64_t max_chunks = (n + grain - 1) / grain;
        if (tls_in_parallel || workers_.empty() || max_chunks == 1) {
            body(0, n);
            return;
        }
        std::lock_guard<std::mutex> region(region_mutex_);
        // A few chunks per thread balances uneven work without much scheduling cost.
        const int64_t chunks = std::min<int64_t>(max_chunks, static_cast<int64_t>(size()) * 4);
        const int64_t step = (n + chunks - 1) / chunks;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            body_ = &body;
            n_ = n;
            step_ = step;
            next_.store(0);
            pending_.store(static_cast<int>(workers_.size()));
            error_ = nullptr;
            generation_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        work();
        for (int i = 0; i < kSpinPauses && pending_.load(std::memory_order_acquire) != 0; ++i) cpu_pause();
        std::unique_lock<std::mutex> lock(mutex_);
        done_cv_.wait(lock, [&] { return pending_.load() == 0; });
        body_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

  private:
    void start(int n) {
        n = std::max(1, n);
        quit_ = false;
        for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this] { loop(); });
    }

    void stop() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            quit_ = true;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
        workers_.clear();
    }

    void work() {
        tls_in_parallel = true;
        for (;;) {
            int64_t begin = next_.fetch_add(step_);
            if (begin >= n_) break;
            int64_t end = std::min(n_, begin + step_);
            try {
                (*body_)(begin, end);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
        }
        tls_in_parallel = false;
    }

    void loop() {
        uint64_t seen = 0;
        for (;;) {
            for (int i = 0; i < kSpinPauses && generation_.load(std::memory_order_acquire) == seen; ++i) cpu_pause();
            {
                std::unique_lock<std::mutex> lock(mutex_);
                cv_.wait(lock, [&] { return quit_ || generation_.load() != seen; });
                if (quit_) return;
                seen = generation_.load();
            }
            work();
            std::lock_guard<std::mutex> lock(mutex_);
            if (pending_.fetch_sub(1) == 1) done_cv_.notify_one();
        }
    }

    std::vector<std::thread> workers_;
    std::mutex region_mutex_;
    std::mutex mutex_;
    std::condition_variable cv_, done_cv_;
    const std::function<void(int64_t, int64_t)> *body_ = nullptr;
    int64_t n_ = 0, step_ = 1;
    std::atomic<int64_t> next_{0};
    std::atomic<int> pending_{0};
    std::atomic<uint64_t> generation_{0};
    bool quit_ = false;
    std::exception_ptr error_;
};

int initial_threads() {
    if (const char *env = std::getenv("SLIPSTREAM_NUM_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return std::min(n, 1024);
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw ? static_cast<int>(hw) : 1;
}

Pool &pool() {
    static Pool p(initial_threads());
    return p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)> &body) {
    pool().run(n, grain, body);
}

}  // namespace slip

extern "C" SLIP_API slip_status slip_set_num_threads(int32_t n) {
    return slip::guard([&] {
        if (n < 1 || n > 1024)
            slip::fail(SLIP_STATUS_INVALID_ARGUMENT,
                       slip::format("expected 1 to 1024 for n, got %d", n));
        slip::set_num_threads(n);
    });
}
