#include "kvcache/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "quant/formats.h"

namespace longctx::kvcache {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

int64_t KvGeometry::block_bytes() const {
  int64_t row = 0;
  for (const auto& l : slots) row = std::max(row, l.k_row_bytes + l.v_row_bytes);
  return page_rows * row;
}

bool KvGeometry::has_compact() const {
  return std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.compact; });
}

int64_t KvGeometry::max_pages(int l, int64_t ctx, int64_t ubatch) const {
  const int64_t all = ceil_div(ctx, page_rows);
  // A compact slot's rows are at most the positions (before a pass r0 <= pos0, so rows held
  // r0 + n <= ctx); the routed fraction is what keeps it smaller.
  if (slots[l].compact) return all;
  // A pass of n rows at pos0 holds rows from the page of attention::oldest_key(pos0) on: at most
  // (pos0 - oldest) + n rows, plus the part of a page before the oldest.
  const int64_t n = std::max<int64_t>(1, std::min(ubatch, ctx));
  const int64_t pos0 = std::max<int64_t>(0, ctx - n);
  const int64_t before = pos0 - attention::oldest_key(slots[l].pattern, pos0);
  // The oldest row needed grows with pos0 for the patterns that drop any, so the widest reach
  // back is at the last pass; a page boundary inside adds at most one page.
  return std::min(all, ceil_div(before + n, page_rows) + 1);
}

int64_t KvGeometry::max_blocks(int64_t ctx, int64_t ubatch) const {
  int64_t s = 0;
  for (int l = 0; l < static_cast<int>(slots.size()); ++l) s += max_pages(l, ctx, ubatch);
  return s;
}

Expected<uint32_t> parse_cache_type(const std::string& s) {
  if (s == "f32") return kF32;
  if (s == "f16") return kF16;
  if (s == "q8_0") return kQ8_0;
  return Status::Error("cache type '" + s + "' is not supported (expected f32, f16 or q8_0)");
}

Expected<KvGeometry> make_geometry(const std::vector<KvSlot>& slots, uint32_t k_type, uint32_t v_type,
                                   int64_t page_rows) {
  CHECK(page_rows > 0 && (page_rows & (page_rows - 1)) == 0);
  KvGeometry g;
  g.k_type = k_type;
  g.v_type = v_type;
  g.page_rows = page_rows;
  for (uint32_t t : {k_type, v_type})
    if (t != kF32 && t != kF16 && t != kQ8_0)
      return Status::Error("cache type " + quant::type_name(t) + " is not one of f32, f16, q8_0");
  for (const KvSlot& l : slots) {
    const int64_t kvd = int64_t(l.kv_heads) * l.head_dim;
    if ((k_type == kQ8_0 || v_type == kQ8_0) && l.head_dim % quant::kQK != 0)
      return Status::Error("a q8_0 cache needs head_dim to be a multiple of 32 (this model's is " +
                           std::to_string(l.head_dim) + ")");
    g.slots.push_back(
        {l.kv_heads, l.head_dim, quant::row_bytes(k_type, kvd), quant::row_bytes(v_type, kvd), l.pattern, l.compact});
  }
  return g;
}

KvCache::KvCache(std::shared_ptr<KvPool> pool, std::shared_ptr<const KvGeometry> geometry, int64_t capacity)
    : pool_(std::move(pool)), geo_(std::move(geometry)), capacity_(capacity) {
  CHECK(pool_->block_bytes() >= geo_->block_bytes());
  while ((int64_t{1} << shift_) < geo_->page_rows) ++shift_;
  const int64_t pages = ceil_div(capacity, geo_->page_rows);
  const int L = static_cast<int>(geo_->slots.size());
  positions_.assign(L, {});
  table_.assign(L, std::vector<int32_t>(pages, -1));
  k_pages_.assign(L, std::vector<uint8_t*>(pages, nullptr));
  v_pages_.assign(L, std::vector<uint8_t*>(pages, nullptr));
  first_row_.assign(L, 0);
}

KvCache& KvCache::operator=(KvCache&& o) noexcept {
  if (this == &o) return *this;
  clear();
  pool_ = std::move(o.pool_);
  geo_ = std::move(o.geo_);
  capacity_ = o.capacity_;
  shift_ = o.shift_;
  table_ = std::move(o.table_);
  k_pages_ = std::move(o.k_pages_);
  v_pages_ = std::move(o.v_pages_);
  first_row_ = std::move(o.first_row_);
  positions_ = std::move(o.positions_);
  o.pool_.reset();
  o.table_.clear();
  return *this;
}

void KvCache::clear() {
  for (int l = 0; l < n_slots(); ++l)
    for (int64_t p = 0; p < static_cast<int64_t>(table_[l].size()); ++p) drop(l, p);
}

void KvCache::drop(int l, int64_t page) {
  if (table_[l][page] < 0) return;
  pool_->release(table_[l][page]);
  table_[l][page] = -1;
  k_pages_[l][page] = v_pages_[l][page] = nullptr;
}

Status KvCache::own(int l, int64_t page) {
  const int32_t cur = table_[l][page];
  if (cur >= 0 && pool_->refs(cur) == 1) return Status::Ok();
  const int32_t id = pool_->take();
  if (id < 0)
    return Status::Error("the KV cache pool is full (" + std::to_string(pool_->blocks()) + " blocks of " +
                         std::to_string(pool_->block_bytes()) + " bytes)");
  uint8_t* b = pool_->block(id);
  const auto& g = geo_->slots[l];
  if (cur >= 0) {  // copy on write: the page is shared with another sequence
    std::memcpy(b, pool_->block(cur), geo_->page_rows * (g.k_row_bytes + g.v_row_bytes));
    pool_->release(cur);
  }
  table_[l][page] = id;
  k_pages_[l][page] = b;
  v_pages_[l][page] = b + geo_->page_rows * g.k_row_bytes;
  return Status::Ok();
}

Status KvCache::prepare(int64_t pos0, int64_t n) {
  CHECK(!empty() && pos0 >= 0 && n >= 0 && pos0 + n <= capacity_);
  for (int l = 0; l < n_slots(); ++l) {
    if (geo_->slots[l].compact) {
      // Rows at positions >= pos0 are forgotten; blocks for up to n rows after the others.
      auto& pos = positions_[l];
      pos.erase(std::lower_bound(pos.begin(), pos.end(), pos0), pos.end());
      const int64_t r0 = static_cast<int64_t>(pos.size()), end = r0 + n;
      for (int64_t p = ceil_div(end, geo_->page_rows); p < static_cast<int64_t>(table_[l].size()); ++p) drop(l, p);
      for (int64_t p = r0 >> shift_; n > 0 && p <= (end - 1) >> shift_; ++p) LONGCTX_RETURN_IF_ERROR(own(l, p));
      continue;
    }
    const int64_t oldest = attention::oldest_key(geo_->slots[l].pattern, pos0);
    if (pos0 == 0) first_row_[l] = 0;  // a new sequence in the same pages
    const int64_t keep_from = oldest >> shift_;
    for (int64_t p = 0; p < keep_from; ++p) drop(l, p);
    first_row_[l] = std::max(first_row_[l], keep_from << shift_);
    // Pages wholly past the pass hold rows of an older, longer sequence that no query will see
    // again (they would be written before being read): given back, so a window layer never
    // holds more than its share of the pool.
    for (int64_t p = ((pos0 + n) >> shift_) + ((pos0 + n) & (geo_->page_rows - 1) ? 1 : 0);
         p < static_cast<int64_t>(table_[l].size()); ++p)
      drop(l, p);
    if (n == 0) continue;
    for (int64_t p = pos0 >> shift_; p <= (pos0 + n - 1) >> shift_; ++p) LONGCTX_RETURN_IF_ERROR(own(l, p));
  }
  return Status::Ok();
}

KvStore KvCache::store(int l) const {
  KvStore s;
  s.k_pages = k_pages_[l].data();
  s.v_pages = v_pages_[l].data();
  s.page_shift = shift_;
  const auto& g = geo_->slots[l];
  s.k_row_bytes = g.k_row_bytes / g.kv_heads;
  s.v_row_bytes = g.v_row_bytes / g.kv_heads;
  s.k_head_stride = s.k_row_bytes * geo_->page_rows;
  s.v_head_stride = s.v_row_bytes * geo_->page_rows;
  s.capacity = capacity_;
  s.first_row = first_row_[l];
  s.k_type = geo_->k_type;
  s.v_type = geo_->v_type;
  if (g.compact) s.positions = const_cast<std::vector<int64_t>*>(&positions_[l]);
  return s;
}

int64_t KvCache::pages_held(int l) const {
  return std::count_if(table_[l].begin(), table_[l].end(), [](int32_t b) { return b >= 0; });
}

int64_t KvCache::blocks_held() const {
  int64_t s = 0;
  for (int l = 0; l < n_slots(); ++l) s += pages_held(l);
  return s;
}

int64_t KvCache::reusable(int64_t n) const {
  if (empty()) return 0;
  for (int l = 0; l < n_slots(); ++l)
    if (attention::oldest_key(geo_->slots[l].pattern, n) < first_row_[l]) return 0;
  return n;
}

KvCache KvCache::fork(int64_t n) const {
  KvCache c(pool_, geo_, capacity_);
  for (int l = 0; l < n_slots(); ++l) {
    c.first_row_[l] = first_row_[l];
    int64_t rows = n;  // rows of the slot the first n positions hold
    if (geo_->slots[l].compact) {
      const auto& pos = positions_[l];
      c.positions_[l].assign(pos.begin(), std::lower_bound(pos.begin(), pos.end(), n));
      rows = static_cast<int64_t>(c.positions_[l].size());
    }
    for (int64_t p = 0; p < ((rows + geo_->page_rows - 1) >> shift_); ++p) {
      if (table_[l][p] < 0) continue;
      pool_->retain(table_[l][p]);
      c.table_[l][p] = table_[l][p];
      c.k_pages_[l][p] = k_pages_[l][p];
      c.v_pages_[l][p] = v_pages_[l][p];
    }
  }
  return c;
}

void KvCache::adopt(int l, int64_t page, int32_t id) {
  CHECK(table_[l][page] < 0 && id >= 0 && id < pool_->blocks());
  CHECK_MSG(!geo_->slots[l].compact, "a compact slot's pages hold rows by count, not position: no prefix cache");
  pool_->retain(id);
  table_[l][page] = id;
  uint8_t* b = pool_->block(id);
  k_pages_[l][page] = b;
  v_pages_[l][page] = b + geo_->page_rows * geo_->slots[l].k_row_bytes;
  bool before = false;
  for (int64_t p = 0; p < page && !before; ++p) before = table_[l][p] >= 0;
  if (!before) first_row_[l] = page << shift_;
}

uint8_t* KvCache::head_row(int l, int64_t pos, bool value, int64_t h) const {
  const auto& g = geo_->slots[l];
  const int64_t head = (value ? g.v_row_bytes : g.k_row_bytes) / g.kv_heads;
  const auto& pages = (value ? v_pages_ : k_pages_)[l];
  CHECK(pages[pos >> shift_]);
  return attention::paged_row(pages.data(), shift_, head * geo_->page_rows, head, h, pos);
}

void KvCache::read_row(int l, int64_t pos, bool value, uint8_t* dst) const {
  const auto& g = geo_->slots[l];
  const int64_t head = (value ? g.v_row_bytes : g.k_row_bytes) / g.kv_heads;
  for (int64_t h = 0; h < g.kv_heads; ++h) std::memcpy(dst + h * head, head_row(l, pos, value, h), head);
}

void KvCache::write_row(int l, int64_t pos, bool value, const uint8_t* src) {
  const auto& g = geo_->slots[l];
  const int64_t head = (value ? g.v_row_bytes : g.k_row_bytes) / g.kv_heads;
  for (int64_t h = 0; h < g.kv_heads; ++h) std::memcpy(head_row(l, pos, value, h), src + h * head, head);
}

Status KvCache::shift(int64_t keep, int64_t discard, int64_t n,
                      const std::function<void(int, float*, int64_t)>& rotate_keys) {
  CHECK(keep >= 0 && discard > 0 && keep + discard <= n && n <= capacity_);
  if (geo_->has_compact())
    return Status::Error("context shift is not available for a model with routed attention (its cache keeps "
                         "routed rows by count)");
  const int64_t n_new = n - discard;
  for (int l = 0; l < n_slots(); ++l) {
    const auto& g = geo_->slots[l];
    // The rows the new layout keeps: new position i comes from i (< keep) or i + discard.
    // Queries from n_new on see back to `oldest`; kept rows this slot already gave back are
    // lost, and then so is the rest of the kept prefix (the held rows stay contiguous).
    const int64_t oldest = attention::oldest_key(g.pattern, n_new);
    int64_t lo = oldest;
    if (lo < keep && lo < first_row_[l]) lo = keep;
    const int64_t rows = n_new - lo;
    std::vector<uint8_t> kbuf(rows * g.k_row_bytes), vbuf(rows * g.v_row_bytes);
    for (int64_t i = lo; i < n_new; ++i) {
      const int64_t src = i < keep ? i : i + discard;
      read_row(l, src, false, kbuf.data() + (i - lo) * g.k_row_bytes);
      read_row(l, src, true, vbuf.data() + (i - lo) * g.v_row_bytes);
    }
    // Keys that moved turn back by `discard` positions: decoded, rotated, encoded again.
    const int64_t moved_lo = std::max(lo, keep);
    if (rotate_keys && moved_lo < n_new) {
      const int64_t kvd = g.kv_heads * g.head_dim;
      std::vector<float> f(kvd * (n_new - moved_lo));
      for (int64_t i = moved_lo; i < n_new; ++i)
        LONGCTX_RETURN_IF_ERROR(quant::dequantize_row(geo_->k_type, kbuf.data() + (i - lo) * g.k_row_bytes,
                                                      f.data() + (i - moved_lo) * kvd, kvd));
      rotate_keys(l, f.data(), n_new - moved_lo);
      for (int64_t i = moved_lo; i < n_new; ++i)
        LONGCTX_RETURN_IF_ERROR(quant::quantize_row(geo_->k_type, f.data() + (i - moved_lo) * kvd,
                                                    kbuf.data() + (i - lo) * g.k_row_bytes, kvd));
    }
    for (int64_t p = 0; p < static_cast<int64_t>(table_[l].size()); ++p) drop(l, p);
    first_row_[l] = lo;
    for (int64_t p = lo >> shift_; rows > 0 && p <= (n_new - 1) >> shift_; ++p) LONGCTX_RETURN_IF_ERROR(own(l, p));
    for (int64_t i = lo; i < n_new; ++i) {
      write_row(l, i, false, kbuf.data() + (i - lo) * g.k_row_bytes);
      write_row(l, i, true, vbuf.data() + (i - lo) * g.v_row_bytes);
    }
  }
  return Status::Ok();
}

}  // namespace longctx::kvcache
