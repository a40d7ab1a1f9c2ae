#include "attention/pattern.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "core/check.h"
#include "core/rng.h"

namespace longctx::attention {
namespace {

template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

// Strict non-negative integer; false on anything else (sign, junk, overflow past 2^40).
bool parse_count(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  *out = std::strtoll(s.c_str(), nullptr, 10);
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  for (;;) {
    size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

// [lo, hi) of the window blocks of query block qb.
void window_blocks(const BigBird& bb, int64_t qb, int64_t* lo, int64_t* hi) {
  *lo = bb.causal ? qb - bb.window + 1 : qb - (bb.window - 1) / 2;
  *hi = *lo + bb.window;
}

void push_span(std::vector<KeySpan>* out, int64_t lo, int64_t hi, bool masked) {
  if (lo >= hi) return;
  if (!out->empty() && out->back().hi == lo && out->back().masked == masked) {
    out->back().hi = hi;
    return;
  }
  out->push_back({lo, hi, masked});
}

}  // namespace

std::string format_pattern(const Pattern& p) {
  return std::visit(Overload{
                        [](const Full&) -> std::string { return "full"; },
                        [](const Causal&) -> std::string { return "causal"; },
                        [](const SlidingWindow& w) { return "window:" + std::to_string(w.window); },
                        [](const BigBird& b) {
                          std::string s = std::string(b.causal ? "bigbird:" : "bigbird-bi:") +
                                          std::to_string(b.block) + "," + std::to_string(b.window) + "," +
                                          std::to_string(b.global) + "," + std::to_string(b.random);
                          if (b.seed) s += "," + std::to_string(b.seed);
                          return s;
                        },
                    },
                    p);
}

Status validate_pattern(const Pattern& p) {
  const std::string name = format_pattern(p);
  auto bad = [&](const std::string& m) { return Status::Error("attention pattern '" + name + "': " + m); };
  if (auto* w = std::get_if<SlidingWindow>(&p))
    if (w->window < 1 || w->window > (int64_t(1) << 40)) return bad("window must be >= 1");
  if (auto* b = std::get_if<BigBird>(&p)) {
    if (b->block < 1 || b->block > (1 << 20)) return bad("block size must be in [1, 1048576]");
    if (b->window < 1 || b->window > (1 << 20)) return bad("window blocks must be >= 1");
    if (b->global < 0 || b->global > (1 << 20)) return bad("global blocks must be >= 0");
    if (b->random < 0 || b->random > (1 << 20)) return bad("random blocks must be >= 0");
  }
  return Status::Ok();
}

Expected<Pattern> parse_pattern(const std::string& s) {
  auto bad = [&](const std::string& why) {
    return Status::Error("bad attention pattern '" + s + "': " + why +
                         " (expected full, causal, window:W, bigbird:B,W,G,R[,SEED] or bigbird-bi:B,W,G,R[,SEED])");
  };
  Pattern p;
  if (s == "full") {
    p = Full{};
  } else if (s == "causal") {
    p = Causal{};
  } else if (s.rfind("window:", 0) == 0) {
    int64_t w;
    if (!parse_count(s.substr(7), &w)) return bad("window size is not a number");
    p = SlidingWindow{w};
  } else if (s.rfind("bigbird:", 0) == 0 || s.rfind("bigbird-bi:", 0) == 0) {
    const bool causal = s[7] == ':';
    auto parts = split(s.substr(causal ? 8 : 11), ',');
    if (parts.size() != 4 && parts.size() != 5) return bad("needs 4 or 5 numbers");
    int64_t v[5] = {0, 0, 0, 0, 0};
    for (size_t i = 0; i < parts.size(); ++i)
      if (!parse_count(parts[i], &v[i])) return bad("'" + parts[i] + "' is not a number");
    if (v[1] > (1 << 20) || v[2] > (1 << 20) || v[3] > (1 << 20)) return bad("block counts are too large");
    p = BigBird{v[0], int(v[1]), int(v[2]), int(v[3]), uint64_t(v[4]), causal};
  } else {
    return bad("unknown pattern");
  }
  Status st = validate_pattern(p);
  if (!st.ok()) return st;
  return p;
}

Expected<std::vector<Pattern>> parse_pattern_list(const std::string& s) {
  std::vector<std::string> items;
  for (const std::string& tok : split(s, ',')) {
    const bool number = !tok.empty() && std::isdigit(static_cast<unsigned char>(tok[0]));
    if (number && !items.empty() && items.back().rfind("bigbird", 0) == 0)
      items.back() += "," + tok;
    else
      items.push_back(tok);
  }
  std::vector<Pattern> out;
  for (const auto& it : items) {
    auto p = parse_pattern(it);
    if (!p.ok()) return p.status();
    out.push_back(*p);
  }
  return out;
}

bool is_causal(const Pattern& p) {
  if (std::holds_alternative<Full>(p)) return false;
  if (auto* b = std::get_if<BigBird>(&p)) return b->causal;
  return true;
}

MaskView::MaskView(const Pattern& p, int64_t kv_len, int64_t q_lo, int64_t q_hi)
    : pattern_(p), kv_len_(kv_len) {
  if (q_hi < 0) q_hi = kv_len;
  const auto* bb = std::get_if<BigBird>(&p);
  if (!bb || q_lo >= q_hi) return;
  CHECK(bb->block > 0);
  n_kblocks_ = (kv_len + bb->block - 1) / bb->block;
  qb0_ = q_lo / bb->block;
  const int64_t qb1 = (q_hi - 1) / bb->block + 1;
  random_.resize(qb1 - qb0_);
  std::vector<int64_t> cand;
  for (int64_t qb = qb0_; qb < qb1; ++qb) {
    if (qb < bb->global || bb->random == 0) continue;  // a global block already sees everything
    int64_t wlo, whi;
    window_blocks(*bb, qb, &wlo, &whi);
    cand.clear();
    const int64_t end = bb->causal ? std::min(wlo, n_kblocks_) : n_kblocks_;
    for (int64_t kb = bb->global; kb < end; ++kb)
      if (kb < wlo || kb >= whi) cand.push_back(kb);
    // Partial Fisher-Yates from a generator seeded by (seed, query block) alone.
    Rng rng(bb->seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(qb) + 1);
    const int64_t take = std::min<int64_t>(bb->random, cand.size());
    for (int64_t i = 0; i < take; ++i) std::swap(cand[i], cand[i + rng.below(cand.size() - i)]);
    auto& r = random_[qb - qb0_];
    r.assign(cand.begin(), cand.begin() + take);
    std::sort(r.begin(), r.end());
  }
}

const std::vector<int64_t>& MaskView::random_blocks(int64_t qb) const {
  static const std::vector<int64_t> kNone;
  if (!std::holds_alternative<BigBird>(pattern_)) return kNone;
  CHECK_MSG(qb >= qb0_ && qb - qb0_ < static_cast<int64_t>(random_.size()), "MaskView: query outside its range");
  return random_[qb - qb0_];
}

bool MaskView::bigbird_sees_block(const BigBird& bb, int64_t qb, int64_t kb) const {
  if (kb < 0 || kb >= n_kblocks_) return false;
  if (bb.causal && kb > qb) return false;
  if (qb < bb.global || kb < bb.global) return true;
  int64_t wlo, whi;
  window_blocks(bb, qb, &wlo, &whi);
  if (kb >= wlo && kb < whi) return true;
  const auto& r = random_blocks(qb);
  return std::binary_search(r.begin(), r.end(), kb);
}

bool MaskView::visible(int64_t q, int64_t k) const {
  if (k < 0 || k >= kv_len_) return false;
  return std::visit(Overload{
                        [](const Full&) { return true; },
                        [&](const Causal&) { return k <= q; },
                        [&](const SlidingWindow& w) { return k <= q && q - k < w.window; },
                        [&](const BigBird& bb) {
                          if (bb.causal && k > q) return false;
                          return bigbird_sees_block(bb, q / bb.block, k / bb.block);
                        },
                    },
                    pattern_);
}

void MaskView::key_spans(int64_t q_lo, int64_t q_hi, std::vector<KeySpan>* out) const {
  if (q_lo >= q_hi || kv_len_ <= 0) return;
  std::visit(Overload{
                 [&](const Full&) { push_span(out, 0, kv_len_, false); },
                 [&](const Causal&) {
                   const int64_t hi = std::min(kv_len_, q_hi);
                   const int64_t all = std::min(q_lo + 1, hi);  // keys every query sees
                   push_span(out, 0, all, false);
                   push_span(out, std::max<int64_t>(all, 0), hi, true);
                 },
                 [&](const SlidingWindow& w) {
                   const int64_t ulo = std::max<int64_t>(0, q_lo - w.window + 1), uhi = std::min(kv_len_, q_hi);
                   const int64_t flo = std::max<int64_t>(0, q_hi - w.window), fhi = std::min(q_lo + 1, kv_len_);
                   if (flo < fhi) {
                     push_span(out, ulo, flo, true);
                     push_span(out, flo, fhi, false);
                     push_span(out, fhi, uhi, true);
                   } else {
                     push_span(out, ulo, uhi, true);
                   }
                 },
                 [&](const BigBird& bb) {
                   const int64_t qb_lo = q_lo / bb.block, qb_hi = (q_hi - 1) / bb.block;
                   const int64_t kb_end = bb.causal ? std::min(n_kblocks_, qb_hi + 1) : n_kblocks_;
                   for (int64_t kb = 0; kb < kb_end; ++kb) {
                     int64_t seen = 0;
                     for (int64_t qb = qb_lo; qb <= qb_hi; ++qb) seen += bigbird_sees_block(bb, qb, kb);
                     if (!seen) continue;
                     const int64_t lo = kb * bb.block;
                     int64_t hi = std::min((kb + 1) * bb.block, kv_len_);
                     if (bb.causal) hi = std::min(hi, q_hi);
                     const bool masked = seen != qb_hi - qb_lo + 1 || (bb.causal && hi - 1 > q_lo);
                     push_span(out, lo, hi, masked);
                   }
                 },
             },
             pattern_);
}

void MaskView::row_spans(int64_t q, int64_t lo, int64_t hi, std::vector<KeySpan>* out) const {
  lo = std::max<int64_t>(lo, 0);
  hi = std::min(hi, kv_len_);
  if (lo >= hi) return;
  std::visit(Overload{
                 [&](const Full&) { push_span(out, lo, hi, false); },
                 [&](const Causal&) { push_span(out, lo, std::min(hi, q + 1), false); },
                 [&](const SlidingWindow& w) {
                   push_span(out, std::max(lo, q - w.window + 1), std::min(hi, q + 1), false);
                 },
                 [&](const BigBird& bb) {
                   const int64_t qb = q / bb.block;
                   const int64_t end = bb.causal ? std::min(hi, q + 1) : hi;
                   for (int64_t kb = lo / bb.block; kb * bb.block < end; ++kb)
                     if (bigbird_sees_block(bb, qb, kb))
                       push_span(out, std::max(lo, kb * bb.block), std::min(end, (kb + 1) * bb.block), false);
                 },
             },
             pattern_);
}

int64_t oldest_key(const Pattern& p, int64_t q) {
  return std::visit(Overload{
                        [](const Full&) -> int64_t { return 0; },
                        [](const Causal&) -> int64_t { return 0; },
                        [&](const SlidingWindow& w) { return std::max<int64_t>(0, q - w.window + 1); },
                        [&](const BigBird& bb) -> int64_t {
                          if (bb.global > 0 || bb.random > 0 || !bb.causal) return 0;
                          int64_t wlo, whi;
                          window_blocks(bb, q / bb.block, &wlo, &whi);
                          return std::max<int64_t>(0, wlo) * bb.block;
                        },
                    },
                    p);
}

int64_t MaskView::oldest_key(int64_t q) const { return attention::oldest_key(pattern_, q); }

int64_t MaskView::query_block_hint() const {
  if (auto* bb = std::get_if<BigBird>(&pattern_)) return bb->block;
  return 0;
}

}  // namespace longctx::attention
