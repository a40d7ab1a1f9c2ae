#include "infer/session.h"

#include <algorithm>
#include <chrono>

namespace longctx::infer {

using clock_type = std::chrono::steady_clock;

Session::Session(model::Model& model, const tokenizer::BpeTokenizer& tok, ThreadPool& pool)
    : model_(model), tok_(tok), pool_(pool), logits_(model.config().vocab_size) {}

Status Session::ensure_cache(int64_t extra_blocks) {
  const int64_t ctx = model_.config().ctx;
  if (!cache_.empty() && cache_.capacity() >= ctx && extra_blocks_ >= extra_blocks) return Status::Ok();
  auto plan = model::plan_memory(model_.config(), model_.weight_bytes(), ctx, ubatch_, k_type_, v_type_, extra_blocks);
  if (!plan.ok()) return plan.status();
  LONGCTX_RETURN_IF_ERROR(model::check_memory(*plan));
  kept_ = kvcache::KvCache();
  kept_tokens_.clear();
  cache_ = kvcache::KvCache();
  auto cache = model_.make_cache(ctx, {k_type_, v_type_, ubatch_, 1, page_rows_, extra_blocks});
  if (!cache.ok()) return cache.status();
  cache_ = std::move(*cache);
  extra_blocks_ = extra_blocks;
  tokens_.clear();
  computed_ = 0;
  return Status::Ok();
}

// The length of the common prefix of a and b, at most `cap`.
static int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int64_t cap) {
  int64_t n = 0;
  const int64_t most = std::min({cap, static_cast<int64_t>(a.size()), static_cast<int64_t>(b.size())});
  while (n < most && a[n] == b[n]) ++n;
  return n;
}

std::vector<int32_t> Session::encode_prompt(const std::string& prompt) const {
  std::vector<int32_t> tokens;
  if (tok_.add_bos()) tokens.push_back(tok_.bos_id());
  tok_.encode_append(prompt, tokens);
  return tokens;
}

Status Session::keep_prefix(const std::vector<int32_t>& prefix, GenerateStats* stats) {
  const int64_t n = static_cast<int64_t>(prefix.size());
  if (n == 0) return Status::Error("nothing to keep: the prefix is empty");
  if (n > model_.config().ctx)
    return Status::Error("the shared prefix is " + std::to_string(n) + " tokens, longer than the context of " +
                         std::to_string(model_.config().ctx));
  // The kept fork holds at most the prefix's pages of each layer, beyond what the running
  // sequence may hold.
  const int64_t pages = (n + page_rows_ - 1) / page_rows_;
  LONGCTX_RETURN_IF_ERROR(ensure_cache(pages * model_.kv_slot_count()));
  kept_ = kvcache::KvCache();  // its blocks back to the pool before set_tokens needs them
  kept_tokens_.clear();
  LONGCTX_RETURN_IF_ERROR(set_tokens(prefix, stats));
  kept_ = cache_.fork(n);
  kept_tokens_ = prefix;
  return Status::Ok();
}

Status Session::set_tokens(const std::vector<int32_t>& tokens, GenerateStats* stats) {
  const int64_t ctx = model_.config().ctx, n = static_cast<int64_t>(tokens.size());
  if (n == 0) return Status::Error("nothing to run: the prompt is empty");
  if (n > ctx)
    return Status::Error("the prompt is " + std::to_string(n) + " tokens, longer than the context of " +
                         std::to_string(ctx));
  LONGCTX_RETURN_IF_ERROR(ensure_cache(extra_blocks_));
  // Keep the common prefix, but always run at least the last token (its logits are needed),
  // and only as much of it as the window layers still hold keys for.
  // (The last token generated before a stop at the token limit has no keys in the cache yet.)
  int64_t keep = cache_.reusable(common_prefix(tokens_, tokens, std::min(n - 1, computed_)));
  // A fork of the kept prefix, when it reuses more.
  if (!kept_tokens_.empty()) {
    const int64_t from_kept = kept_.reusable(common_prefix(kept_tokens_, tokens, n - 1));
    if (from_kept > keep) {
      cache_ = kvcache::KvCache();  // its blocks back to the pool first
      cache_ = kept_.fork(from_kept);
      keep = from_kept;
    }
  }
  const auto t0 = clock_type::now();
  // With attribution on, the last token (the row that predicts the next one) runs alone.
  const int64_t bulk = attributing_ ? n - 1 : n;
  for (int64_t i = keep; i < bulk; i += ubatch_) {
    const int64_t len = std::min(ubatch_, bulk - i);
    LONGCTX_RETURN_IF_ERROR(model_.forward_cached(pool_, arena_, cache_, tokens.data() + i, len, i, logits_.data(), false));
  }
  if (attributing_) {
    model_.set_attribution(attribution_.data());
    const Status st = model_.forward_cached(pool_, arena_, cache_, tokens.data() + n - 1, 1, n - 1, logits_.data(), false);
    model_.set_attribution(nullptr);
    LONGCTX_RETURN_IF_ERROR(st);
    ++attributed_rows_;
  }
  tokens_ = tokens;
  computed_ = n;
  if (stats) {
    stats->prompt_tokens = n;
    stats->reused_tokens = keep;
    stats->prefill_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  }
  return Status::Ok();
}

void Session::set_attribution(bool on) {
  attributing_ = on;
  attribution_.assign(on ? model_.config().ctx : 0, 0.0);
  attributed_rows_ = 0;
}

Status Session::make_room() {
  const int64_t n = static_cast<int64_t>(tokens_.size());
  if (!shift_)
    return Status::Error("the context of " + std::to_string(n) +
                         " tokens is full (setting 'context_shift' goes on past it, or use a larger setting 'ctx')");
  if (keep_ < 0 || keep_ + 2 > n)
    return Status::Error("setting 'keep' " + std::to_string(keep_) + " leaves nothing to drop from a context of " +
                         std::to_string(n) + " tokens");
  // As llama.cpp: keep the first `keep` tokens and drop the older half of the rest.
  const int64_t discard = (n - keep_) / 2;
  LONGCTX_RETURN_IF_ERROR(model_.shift_cache(cache_, keep_, discard, n));
  tokens_.erase(tokens_.begin() + keep_, tokens_.begin() + keep_ + discard);
  computed_ -= discard;
  if (attributing_) {  // the dropped positions' mass goes with them; the rest moves down
    attribution_.erase(attribution_.begin() + keep_, attribution_.begin() + keep_ + discard);
    attribution_.resize(model_.config().ctx, 0.0);
  }
  ++shifts_;
  return Status::Ok();
}

Status Session::continue_tokens(int64_t n, Sampler& sampler, const std::vector<int32_t>& stop,
                                const std::function<void(int32_t)>& on_token, GenerateStats* stats) {
  const int64_t ctx = model_.config().ctx, V = model_.config().vocab_size;
  const auto t0 = clock_type::now();
  auto done = [&] {
    if (stats) stats->decode_s += std::chrono::duration<double>(clock_type::now() - t0).count();
  };
  std::vector<float> work(V);
  for (int64_t i = 0; i < n; ++i) {
    std::copy(logits_.begin(), logits_.end(), work.begin());  // the sampler edits its input
    const int32_t next = sampler.sample(work.data(), V, tokens_);
    if (next == tok_.eos_id() || std::find(stop.begin(), stop.end(), next) != stop.end()) {
      if (stats) stats->stopped_at_eos = true;
      break;
    }
    if (static_cast<int64_t>(tokens_.size()) == ctx) {  // no room for the next token's keys
      const Status st = make_room();
      if (!st.ok()) {
        done();
        return st;
      }
    }
    tokens_.push_back(next);
    if (stats) ++stats->generated;
    on_token(next);
    if (i + 1 == n) break;
    if (attributing_) model_.set_attribution(attribution_.data());
    const Status st = model_.forward_cached(pool_, arena_, cache_, &tokens_.back(), 1,
                                            static_cast<int64_t>(tokens_.size()) - 1, logits_.data(), false);
    model_.set_attribution(nullptr);
    if (st.ok() && attributing_) ++attributed_rows_;
    if (!st.ok()) {
      done();
      return st;
    }
    computed_ = static_cast<int64_t>(tokens_.size());
  }
  done();
  return Status::Ok();
}

Expected<GenerateStats> Session::generate(const std::string& prompt, int64_t n, const SamplerOptions& sampling,
                                          const std::function<void(const std::string&)>& on_text) {
  LONGCTX_RETURN_IF_ERROR(sampling.validate());
  if (n < 0) return Status::Error("the number of tokens to generate must be >= 0");
  const std::vector<int32_t> tokens = encode_prompt(prompt);
  GenerateStats st;
  LONGCTX_RETURN_IF_ERROR(set_tokens(tokens, &st));
  Sampler sampler(sampling);
  LONGCTX_RETURN_IF_ERROR(continue_tokens(n, sampler, {}, [&](int32_t id) { on_text(tok_.token_bytes(id)); }, &st));
  return st;
}

}  // namespace longctx::infer
