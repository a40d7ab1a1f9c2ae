// One thread pool for the whole process (`-t N`, default: all cores). Work is split statically
// (task i always goes to the same slot for a given thread count), so results are deterministic.
// OpenBLAS is pinned to one thread and called from inside the pool's tasks: never oversubscribed.
// Hand-off: a worker that finishes a job spins (with pause) for kSpinMicros before it sleeps on
// a condition variable, and so does the caller waiting for the workers. Decoding one token
// makes hundreds of parallel calls a few microseconds apart; waking a sleeping thread costs 4 to
// 34 us on a 2-vCPU VM, which otherwise dominates.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace longctx {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }
  // Calls fn(task, thread) for task in [0, tasks); thread in [0, threads()). Tasks are dealt
  // round-robin in contiguous chunks: thread t runs tasks [t*tasks/T, (t+1)*tasks/T).
  void parallel_for(int64_t tasks, const std::function<void(int64_t task, int thread)>& fn);
  // Like parallel_for, but each thread takes the next task as it finishes one (for tasks of
  // uneven cost, e.g. causal attention). Which thread runs a task varies; callers make each
  // task's result independent of that, so results stay deterministic.
  void parallel_for_dynamic(int64_t tasks, const std::function<void(int64_t task, int thread)>& fn);
  // Calls fn(begin, end, thread) once per thread over an even split of [0, n).
  void parallel_range(int64_t n, const std::function<void(int64_t begin, int64_t end, int thread)>& fn);

  // A one-thread pool of the calling thread: it runs work inline, so it may be used inside a
  // task of another pool (work spread over sequences, each run serially).
  static ThreadPool& calling_thread();
  // The process-wide pool; set_default_threads must be called before first use to change it.
  static ThreadPool& global();
  static void set_default_threads(int threads);  // <= 0: all cores

 private:
  void worker(int index);
  void run_slot(int slot);

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};           // workers asleep (or about to be) on cv_start_
  std::atomic<bool> caller_sleeping_{false};  // the caller asleep on cv_done_
  std::atomic<bool> stop_{false};
  int64_t n_ = 0;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
};

}  // namespace longctx
