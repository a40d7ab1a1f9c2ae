// core/thread_pool.h: every slot of a job runs exactly once with its documented range and thread
// index; dynamic tasks run once each; jobs back to back with slow slots never mix.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace longctx {
namespace {

TEST(ThreadPool, EverySlotRunsOnceWithItsRange) {
  for (int threads : {1, 2, 3, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 5, 17, 100}) {
      for (int rep = 0; rep < 300; ++rep) {
        std::vector<std::atomic<int>> calls(threads);
        std::vector<int64_t> begin(threads, -1), end(threads, -1);
        pool.parallel_range(n, [&](int64_t b, int64_t e, int t) {
          ASSERT_GE(t, 0);
          ASSERT_LT(t, threads);
          calls[t].fetch_add(1);
          begin[t] = b;
          end[t] = e;
        });
        for (int t = 0; t < threads; ++t) {
          // n == 1 runs inline as slot 0; otherwise slot t has [n t / T, n (t + 1) / T), and an
          // empty one is not called.
          const int64_t b = n == 1 ? (t == 0 ? 0 : 1) : n * t / threads;
          const int64_t e = n == 1 ? (t == 0 ? 1 : 1) : n * (t + 1) / threads;
          ASSERT_EQ(calls[t].load(), b < e ? 1 : 0) << "threads " << threads << " n " << n << " slot " << t;
          if (b < e) {
            EXPECT_EQ(begin[t], b);
            EXPECT_EQ(end[t], e);
          }
        }
      }
    }
  }
}

TEST(ThreadPool, DynamicTasksRunOnceEach) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t tasks : {1, 2, 7, 64}) {
      for (int rep = 0; rep < 200; ++rep) {
        std::vector<std::atomic<int>> ran(tasks);
        pool.parallel_for_dynamic(tasks, [&](int64_t i, int t) {
          ASSERT_LT(t, threads);
          ran[i].fetch_add(1);
        });
        for (int64_t i = 0; i < tasks; ++i) ASSERT_EQ(ran[i].load(), 1) << "task " << i;
      }
    }
  }
}

// Slots of uneven length (a thread sometimes slow), many jobs back to back: no slot runs in the
// wrong job.
TEST(ThreadPool, BackToBackJobsWithSlowSlots) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  int64_t expect = 0;
  for (int job = 0; job < 3000; ++job) {
    const int64_t n = 3 + job % 5;
    pool.parallel_range(n, [&](int64_t b, int64_t e, int t) {
      if ((job + t) % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
      for (int64_t i = b; i < e; ++i) sum.fetch_add(job * 10 + i);
    });
    for (int64_t i = 0; i < n; ++i) expect += job * 10 + i;
    ASSERT_EQ(sum.load(), expect) << "job " << job;
  }
}

}  // namespace
}  // namespace longctx
