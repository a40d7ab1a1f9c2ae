// dist::GradReducer: every float of the buffer is summed over the ranks exactly once, whatever
// the order of ready_from offsets and the bucket size. Run alone (one rank: nothing moves, but
// the buckets still cover the buffer once) and under `mpirun -np 2` (CTest dist_grad_reducer_mpi),
// where each rank's values differ and the expected sums are computed here independently.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "dist/comm.h"

namespace longctx::dist {
namespace {

Group& group() {
  auto g = Group::world();
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? **g : Group::single();
}

// Rank r's value at i: small integers, so sums in any order are exact in fp32.
float value(int rank, int64_t i) { return static_cast<float>((i * 7 + rank * 13) % 101) - 50.0f; }

void run_case(int64_t total, int64_t bucket, const std::vector<int64_t>& offsets, int steps) {
  Group& g = group();
  std::vector<float> grads(total);
  GradReducer red(g, grads.data(), total, bucket);
  for (int step = 0; step < steps; ++step) {
    for (int64_t i = 0; i < total; ++i) grads[i] = value(g.rank(), i) + step;
    red.begin_step();
    for (int64_t off : offsets) red.ready_from(off);
    red.finish();
    for (int64_t i = 0; i < total; ++i) {
      float want = 0;
      for (int r = 0; r < g.size(); ++r) want += value(r, i) + step;
      ASSERT_EQ(grads[i], want) << "total " << total << " bucket " << bucket << " step " << step << " at " << i;
    }
  }
  EXPECT_EQ(red.stats().bytes, static_cast<int64_t>(steps) * total * static_cast<int64_t>(sizeof(float)));
}

TEST(GradReducer, SumsEveryFloatOnce) {
  // Offsets as backward gives them (decreasing, the last 0), with repeats, increases that say
  // nothing new, values past the ends, and none at all (finish sends everything).
  run_case(1000, 64, {900, 900, 700, 650, 10, 0}, 3);
  run_case(1000, 1 << 20, {500, 0}, 2);
  run_case(1000, 1, {999, 998, 500, 600, 2000, -5}, 2);
  run_case(4097, 1000, {}, 2);
  run_case(1, 1, {0}, 1);
}

TEST(GradReducer, BucketsFollowTheBucketSize) {
  Group& g = group();
  std::vector<float> grads(1000, 1.0f);
  GradReducer red(g, grads.data(), 1000, 300);
  red.begin_step();
  // 900: 100 final, under a bucket; 650: bucket [650, 1000); 350: bucket [350, 650); 200: 150
  // unsent; finish: [0, 350).
  for (int64_t off : {900, 650, 350, 200}) red.ready_from(off);
  red.finish();
  EXPECT_EQ(red.stats().buckets, 3);
  EXPECT_EQ(red.stats().bytes, 1000 * 4);
  for (float x : grads) ASSERT_EQ(x, static_cast<float>(g.size()));
}

TEST(Group, SumsDoubles) {
  Group& g = group();
  double x[2] = {1.5, static_cast<double>(g.rank())};
  g.sum(x, 2);
  EXPECT_EQ(x[0], 1.5 * g.size());
  EXPECT_EQ(x[1], g.size() * (g.size() - 1) / 2.0);
  if (std::getenv("LONGCTX_EXPECT_RANKS")) EXPECT_EQ(g.size(), std::atoi(std::getenv("LONGCTX_EXPECT_RANKS")));
}

}  // namespace
}  // namespace longctx::dist
