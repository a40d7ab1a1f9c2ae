// kernels/kv_tile.h on every SIMD target compiled in and supported by this CPU (Highway's
// SetSupportedTargetsForTest), against a scalar twin written here: rows decoded by hand (fp16
// through quant::fp16_to_fp32, Q8_0 as d * qs) and products summed in double; equal to ~1e-5 of
// the sum of |terms|. Covers padded rows (padding filled with NaN bytes, so a stray read shows),
// ld_s / ld_p > cols (the slack left untouched, NaN weights there never read), heads that are
// not whole vectors (fp32 / fp16), row groups (R up to 33), and a bit-exact check of the fp16
// and Q8_0 conversions over all 65536 half values; a Prefetch hint changes no output bit.
// KvTile.Throughput prints GB/s.
#include "kernels/kv_tile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "hwy/targets.h"
#include "kernels/vec.h"
#include "quant/formats.h"
#include "quant/fp16.h"

namespace longctx::kernels {
namespace {

constexpr int64_t kQ8Bytes = 34;

// cols rows of hd elements in `type`, row j at data() + j * row_bytes, data() `offset` bytes past
// a 64-byte boundary; and their values.
struct Rows {
  uint32_t type = 0;
  int64_t hd = 0, cols = 0, row_bytes = 0, offset = 0;
  std::vector<uint8_t> bytes;
  std::vector<double> val;  // [cols, hd], what the kernels should read
  const void* data() const { return bytes.data() + offset; }
};

void put16(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }

Rows make_rows(uint32_t type, int64_t hd, int64_t cols, int64_t pad, int64_t offset, uint64_t seed) {
  Rows m;
  m.type = type, m.hd = hd, m.cols = cols, m.offset = offset;
  const int64_t packed = type == kF32 ? hd * 4 : type == kF16 ? hd * 2 : hd / 32 * kQ8Bytes;
  m.row_bytes = packed + pad;
  // 0xff everywhere first: an fp32 / fp16 NaN, a Q8_0 scale of NaN, wherever a kernel must not look.
  m.bytes.assign(64 + offset + cols * m.row_bytes, 0xff);
  m.offset += (64 - reinterpret_cast<uintptr_t>(m.bytes.data()) % 64) % 64;  // 64-byte aligned + offset
  m.val.resize(cols * hd);
  Rng r(seed);
  for (int64_t j = 0; j < cols; ++j) {
    uint8_t* row = m.bytes.data() + m.offset + j * m.row_bytes;
    double* val = m.val.data() + j * hd;
    if (type == kF32) {
      for (int64_t i = 0; i < hd; ++i) {
        const float x = static_cast<float>(r.normal());
        std::memcpy(row + i * 4, &x, 4);
        val[i] = x;
      }
    } else if (type == kF16) {
      for (int64_t i = 0; i < hd; ++i) {
        const uint16_t h = quant::fp32_to_fp16(static_cast<float>(r.normal()));
        put16(row + i * 2, h);
        val[i] = quant::fp16_to_fp32(h);
      }
    } else {
      for (int64_t b = 0; b < hd / 32; ++b) {
        uint8_t* blk = row + b * kQ8Bytes;
        // Scales over a few octaves, either sign, some of them fp16 subnormals.
        const double mag = r.below(8) == 0 ? 1e-6 * r.uniform() : 0.001 + 0.05 * r.uniform();
        const uint16_t d = quant::fp32_to_fp16(static_cast<float>(r.below(2) ? mag : -mag));
        put16(blk, d);
        for (int64_t i = 0; i < 32; ++i) {
          const auto q = static_cast<int8_t>(static_cast<int>(r.below(256)) - 128);
          blk[2 + i] = static_cast<uint8_t>(q);
          val[b * 32 + i] = static_cast<double>(quant::fp16_to_fp32(d)) * q;
        }
      }
    }
  }
  return m;
}

std::vector<float> randv(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal());
  return v;
}

void check_scores(const Rows& k, int64_t R, const char* what) {
  const int64_t hd = k.hd, cols = k.cols, ld_s = cols + 3;
  const auto q = randv(R * hd, 100 + R * 7 + hd);
  const float kSentinel = 12345.0f;
  std::vector<float> s(R * ld_s, kSentinel);
  kv_scores(k.type, k.data(), k.row_bytes, cols, q.data(), R, hd, s.data(), ld_s);
  int bad = 0;
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      double want = 0, mag = 0;
      for (int64_t i = 0; i < hd; ++i) {
        const double t = static_cast<double>(q[r * hd + i]) * k.val[j * hd + i];
        want += t;
        mag += std::fabs(t);
      }
      const double got = s[r * ld_s + j];
      if (!(std::fabs(got - want) <= 1e-5 * mag + 1e-30) && bad++ < 5) {
        ADD_FAILURE() << what << " r=" << r << " j=" << j << " got " << got << " want " << want << " mag " << mag;
      }
    }
    for (int64_t j = cols; j < ld_s; ++j) {
      if (s[r * ld_s + j] != kSentinel && bad++ < 5) ADD_FAILURE() << what << " wrote s past cols, r=" << r;
    }
  }
}

void check_accumulate(const Rows& v, int64_t R, const char* what) {
  const int64_t hd = v.hd, cols = v.cols, ld_p = cols + 5;
  auto p = randv(R * ld_p, 200 + R * 5 + hd);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = cols; j < ld_p; ++j) p[r * ld_p + j] = NAN;  // slack: must not be read
  }
  const auto acc0 = randv(R * hd, 300 + R + hd);
  auto acc = acc0;
  kv_accumulate(v.type, v.data(), v.row_bytes, cols, p.data(), ld_p, R, hd, acc.data());
  int bad = 0;
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t i = 0; i < hd; ++i) {
      double want = acc0[r * hd + i], mag = std::fabs(want);
      for (int64_t j = 0; j < cols; ++j) {
        const double t = static_cast<double>(p[r * ld_p + j]) * v.val[j * hd + i];
        want += t;
        mag += std::fabs(t);
      }
      const double got = acc[r * hd + i];
      if (!(std::fabs(got - want) <= 1e-5 * mag + 1e-30) && bad++ < 5) {
        ADD_FAILURE() << what << " r=" << r << " i=" << i << " got " << got << " want " << want << " mag " << mag;
      }
    }
  }
}

// Runs fn once per SIMD target (compiled here and supported by this CPU), then restores the
// normal dispatch.
template <class Fn>
void for_each_target(Fn fn) {
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(t);
    SCOPED_TRACE(hwy::TargetName(t));
    fn(hwy::TargetName(t));
  }
  hwy::SetSupportedTargetsForTest(0);
}

const uint32_t kTypes[] = {kF32, kF16, kQ8_0};
const char* type_name(uint32_t t) { return t == kF32 ? "f32" : t == kF16 ? "f16" : "q8_0"; }

TEST(KvTile, RowBytes) {
  EXPECT_EQ(kv_row_bytes(kF32, 64), 256);
  EXPECT_EQ(kv_row_bytes(kF16, 7), 14);
  EXPECT_EQ(kv_row_bytes(kQ8_0, 128), 4 * 34);
  EXPECT_EQ(kv_row_bytes(kQ8_0, 40), -1);
  EXPECT_EQ(kv_row_bytes(kQ4_0, 64), -1);
}

TEST(KvTile, MatchesScalarTwin) {
  for_each_target([](const char* target) {
    for (uint32_t type : kTypes) {
      std::vector<int64_t> hds = {32, 64, 128};
      if (type != kQ8_0) hds.insert(hds.end(), {40, 7});
      for (int64_t hd : hds) {
        for (int64_t cols : {1, 7, 16, 255, 256}) {
          // Padding that keeps fp32 / fp16 elements aligned, plus an odd start for Q8_0.
          const int64_t pad = type == kQ8_0 ? 3 : 8;
          const Rows m = make_rows(type, hd, cols, pad, type == kQ8_0 ? 1 : 0, hd * 1000 + cols);
          for (int64_t R : {1, 2, 3, 4, 5, 8, 9, 16, 33}) {
            char what[128];
            std::snprintf(what, sizeof what, "%s %s hd=%lld cols=%lld R=%lld", target, type_name(type),
                          static_cast<long long>(hd), static_cast<long long>(cols), static_cast<long long>(R));
            check_scores(m, R, what);
            check_accumulate(m, R, what);
          }
        }
      }
    }
  });
}

// Heads of 3, 5 and 6 vectors (panels of 4 plus narrower ones), 256 wide, and rows that start
// at odd addresses; 4128 wide is past the fp32 scratch that fp16 / Q8_0 rows with many query
// rows are converted into, so several row groups read those rows directly.
TEST(KvTile, OtherHeadSizesAndAlignments) {
  for_each_target([](const char* target) {
    for (uint32_t type : kTypes) {
      for (int64_t hd : {48, 80, 96, 160, 256, 4128}) {
        if (type == kQ8_0 && hd % 32 != 0) continue;
        for (int64_t offset : {0, 3}) {
          const Rows m = make_rows(type, hd, 37, type == kF32 ? 12 : 6, offset, hd + offset);
          for (int64_t R : {1, 3, 6, 512}) {
            if (R > 6 && hd > 96) continue;  // 512 rows: enough to run several groups at a few widths
            char what[128];
            std::snprintf(what, sizeof what, "%s %s hd=%lld offset=%lld R=%lld", target, type_name(type),
                          static_cast<long long>(hd), static_cast<long long>(offset), static_cast<long long>(R));
            check_scores(m, R, what);
            check_accumulate(m, R, what);
          }
        }
      }
    }
  });
}

// With p = 1 and acc = -0, acc comes back as the row itself (x + -0 == x, -0 included), so the
// conversion is compared bit for bit with quant::fp16_to_fp32: every half value, subnormals,
// Inf, and NaN sign and payload included (the FMA quiets any NaN, so a missing quiet bit would
// not show, nor could it change a result); and Q8_0 scales of every half value times int8 edge
// values.
TEST(KvTile, ConversionsAreExact) {
  const int64_t n = 65536;
  std::vector<uint16_t> f16(n);
  for (int64_t i = 0; i < n; ++i) f16[i] = static_cast<uint16_t>(i);
  const int8_t qv[] = {1, -1, 0, 127, -128, 3};
  std::vector<uint8_t> q8(n * kQ8Bytes);
  for (int64_t b = 0; b < n; ++b) {
    put16(q8.data() + b * kQ8Bytes, static_cast<uint16_t>(b));
    for (int i = 0; i < 32; ++i) q8[b * kQ8Bytes + 2 + i] = static_cast<uint8_t>(qv[(b + i) % 6]);
  }
  const float one = 1.0f;
  for_each_target([&](const char* target) {
    std::vector<float> acc(n, -0.0f);
    kv_accumulate(kF16, f16.data(), n * 2, 1, &one, 1, 1, n, acc.data());
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t want = std::bit_cast<uint32_t>(quant::fp16_to_fp32(f16[i]));
      if (std::bit_cast<uint32_t>(acc[i]) != want && bad++ < 5) {
        ADD_FAILURE() << target << " fp16 " << std::hex << f16[i] << " -> " << std::bit_cast<uint32_t>(acc[i])
                      << ", want " << want;
      }
    }
    acc.assign(n * 32, -0.0f);
    kv_accumulate(kQ8_0, q8.data(), n * kQ8Bytes, 1, &one, 1, 1, n * 32, acc.data());
    for (int64_t b = 0; b < n; ++b) {
      for (int i = 0; i < 32; ++i) {
        const float x = quant::fp16_to_fp32(static_cast<uint16_t>(b)) * static_cast<float>(qv[(b + i) % 6]);
        const uint32_t got = std::bit_cast<uint32_t>(acc[b * 32 + i]), want = std::bit_cast<uint32_t>(x);
        if (got != want && bad++ < 5) {
          ADD_FAILURE() << target << " q8_0 d=" << std::hex << b << " q=" << std::dec << int(qv[(b + i) % 6])
                        << " -> " << std::hex << got << ", want " << want;
        }
      }
    }
  });
}

// A Prefetch range is a hint: with one of any size (empty, a byte, misaligned, far larger than
// the keys, overlapping the rows themselves) every output is bit-identical to the call without.
TEST(KvTile, PrefetchChangesNothing) {
  std::vector<uint8_t> other(1 << 20, 0);
  for_each_target([&](const char* target) {
    for (uint32_t type : kTypes) {
      for (int64_t R : {1, 3, 9}) {
        for (int64_t cols : {1, 5, 256}) {
          const Rows m = make_rows(type, 64, cols, 0, 0, 11 + cols);
          const auto q = randv(R * 64, 5 + R);
          std::vector<float> s0(R * cols), acc0(R * 64, 0.5f);
          kv_scores(type, m.data(), m.row_bytes, cols, q.data(), R, 64, s0.data(), cols);
          kv_accumulate(type, m.data(), m.row_bytes, cols, s0.data(), cols, R, 64, acc0.data());
          const Prefetch ranges[] = {{other.data(), 0}, {other.data(), 1}, {other.data() + 7, 100000},
                                     {other.data(), static_cast<int64_t>(other.size())}, {m.data(), cols * m.row_bytes}};
          for (const Prefetch& pf : ranges) {
            std::vector<float> s(R * cols), acc(R * 64, 0.5f);
            kv_scores(type, m.data(), m.row_bytes, cols, q.data(), R, 64, s.data(), cols, pf);
            kv_accumulate(type, m.data(), m.row_bytes, cols, s.data(), cols, R, 64, acc.data(), pf);
            EXPECT_EQ(std::memcmp(s.data(), s0.data(), s.size() * 4), 0) << target << " type " << type << " R " << R;
            EXPECT_EQ(std::memcmp(acc.data(), acc0.data(), acc.size() * 4), 0) << target << " type " << type << " R " << R;
          }
        }
      }
    }
  });
}

TEST(KvTile, EmptyCallsTouchNothing) {
  float s = 7.0f, acc = 7.0f;
  const float q = 1.0f;
  kv_scores(kF32, nullptr, 4, 0, &q, 1, 1, &s, 0);
  kv_accumulate(kF32, nullptr, 4, 0, &q, 0, 1, 1, &acc);
  kv_scores(kF32, &q, 4, 1, &q, 0, 1, &s, 1);
  EXPECT_EQ(s, 7.0f);
  EXPECT_EQ(acc, 7.0f);
}

// Decoding-shaped work: 8192 keys in tiles of 256, hd 64, 3 query rows (a GQA group), scores
// then the weighted sum of values, as the attention driver calls them. GB/s counts the K and V
// bytes read; the whole cache is 1 to 4 MiB, so this is about L2 / L3 bandwidth, not DRAM.
TEST(KvTile, Throughput) {
  const int64_t cols = 8192, tile = 256, hd = 64, R = 3;
  std::printf("  target %s, hd %lld, R %lld, %lld keys in tiles of %lld\n", simd_target_name(),
              static_cast<long long>(hd), static_cast<long long>(R), static_cast<long long>(cols),
              static_cast<long long>(tile));
  for (uint32_t type : kTypes) {
    const Rows k = make_rows(type, hd, cols, 0, 0, 1), v = make_rows(type, hd, cols, 0, 0, 2);
    const auto q = randv(R * hd, 3);
    std::vector<float> s(R * tile), acc(R * hd, 0.0f);
    const auto* kb = static_cast<const uint8_t*>(k.data());
    const auto* vb = static_cast<const uint8_t*>(v.data());
    using Clock = std::chrono::steady_clock;
    auto run = [&](bool scores, bool accumulate, int reps) {
      const auto t0 = Clock::now();
      for (int rep = 0; rep < reps; ++rep) {
        for (int64_t j0 = 0; j0 < cols; j0 += tile) {
          if (scores) kv_scores(type, kb + j0 * k.row_bytes, k.row_bytes, tile, q.data(), R, hd, s.data(), tile);
          if (accumulate) {
            kv_accumulate(type, vb + j0 * v.row_bytes, v.row_bytes, tile, s.data(), tile, R, hd, acc.data());
          }
        }
      }
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    const double bytes = static_cast<double>(cols * k.row_bytes);  // per K or V pass
    // Warm up (and size the runs to ~40 ms each).
    const double t1 = run(true, true, 2) / 2;
    const int reps = std::max(1, static_cast<int>(0.04 / t1));
    const double ts = run(true, false, reps) / reps, ta = run(false, true, reps) / reps,
                 tb = run(true, true, reps) / reps;
    std::printf("  %-5s scores %6.1f GB/s  accumulate %6.1f GB/s  both %6.1f GB/s  (%.1f us per 8192 keys)\n",
                type_name(type), bytes / ts * 1e-9, bytes / ta * 1e-9, 2 * bytes / tb * 1e-9, tb * 1e6);
    EXPECT_TRUE(std::isfinite(acc[0]));
  }
}

}  // namespace
}  // namespace longctx::kernels
