#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "core/check.h"

extern "C" void openblas_set_num_threads(int);

namespace longctx {

namespace {
// Set while a thread runs a task: a nested parallel_range would wait on itself forever.
thread_local bool t_in_task = false;
struct TaskScope {
  TaskScope() : outer(t_in_task) { t_in_task = true; }
  ~TaskScope() { t_in_task = outer; }
  bool outer;
};
}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(threads > 0 ? threads : 1) {
  openblas_set_num_threads(1);
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_start_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::run_slot(int slot) {
  TaskScope scope;
  int64_t b = n_ * slot / threads_, e = n_ * (slot + 1) / threads_;
  if (b < e) (*job_)(b, e, slot);
}

namespace {
constexpr int64_t kSpinMicros = 200;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpinMicros have passed; true when done() held.
template <class F>
bool spin_until(F done) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::microseconds(kSpinMicros);
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 63 && clock::now() > deadline) return done();
  }
}
}  // namespace

// Sleeping and waking: a sleeper registers (sleepers_ / caller_sleeping_) under mu_ before it
// re-checks its condition, and a waker changes the condition before it reads the registration,
// both sequentially consistent: either the sleeper sees the change, or the waker sees the
// sleeper and notifies under mu_.
void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto started = [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(started)) {
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1);
      cv_start_.wait(lk, started);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_slot(index);
    if (pending_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_range(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  CHECK_MSG(!t_in_task || threads_ == 1, "ThreadPool::parallel_range called from inside a pool task");
  TaskScope scope;
  if (threads_ == 1 || n == 1) { fn(0, n, 0); return; }
  n_ = n;
  job_ = &fn;
  pending_.store(threads_ - 1);
  generation_.fetch_add(1);  // publishes n_, job_ and pending_ to the workers
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    cv_start_.notify_all();
  }
  run_slot(0);
  auto finished = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(finished)) {
    std::unique_lock<std::mutex> lk(mu_);
    caller_sleeping_.store(true);
    cv_done_.wait(lk, finished);
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t tasks, const std::function<void(int64_t, int)>& fn) {
  parallel_range(tasks, [&](int64_t b, int64_t e, int t) {
    for (int64_t i = b; i < e; ++i) fn(i, t);
  });
}

namespace {
int g_default_threads = 0;
}

void ThreadPool::set_default_threads(int threads) { g_default_threads = threads; }

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(g_default_threads > 0 ? g_default_threads
                                               : static_cast<int>(std::thread::hardware_concurrency()));
  return pool;
}

void ThreadPool::parallel_for_dynamic(int64_t tasks, const std::function<void(int64_t, int)>& fn) {
  if (tasks <= 0) return;
  std::atomic<int64_t> next{0};
  parallel_range(std::min<int64_t>(threads_, tasks), [&](int64_t, int64_t, int t) {
    for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) fn(i, t);
  });
}

ThreadPool& ThreadPool::calling_thread() {
  thread_local ThreadPool one(1);
  return one;
}

}  // namespace longctx
