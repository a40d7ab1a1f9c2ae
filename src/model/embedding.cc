#include "model/embedding.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "kernels/vec.h"

namespace longctx::model {

EmbedOptions default_embed_options(const ModelConfig& c) {
  EmbedOptions o;
  o.pooling = c.pooling == Pooling::kNone ? Pooling::kMean : c.pooling;
  o.normalize = c.normalize;
  return o;
}

Expected<std::vector<int32_t>> embed_tokens(const tokenizer::BpeTokenizer& tok, const std::string& text,
                                            int64_t max_tokens) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return Status::Error("empty text");
  std::vector<int32_t> body = tok.encode_special(text);  // special-token text parsed, as HF does
  const bool bos = tok.add_bos() && tok.bos_id() >= 0, eos = tok.add_eos() && tok.eos_id() >= 0;
  const int64_t room = max_tokens - (bos ? 1 : 0) - (eos ? 1 : 0);
  if (room < 1) return Status::Error("the context is too small for a text");
  if (static_cast<int64_t>(body.size()) > room) body.resize(room);
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 2);
  if (bos) ids.push_back(tok.bos_id());
  ids.insert(ids.end(), body.begin(), body.end());
  if (eos) ids.push_back(tok.eos_id());
  if (ids.empty()) return Status::Error("the text has no tokens");
  return ids;
}

void pool_hidden(const float* hidden, int64_t n, int64_t dim, Pooling pooling, bool normalize, float* out) {
  switch (pooling) {
    case Pooling::kCls: std::copy(hidden, hidden + dim, out); break;
    case Pooling::kLast: std::copy(hidden + (n - 1) * dim, hidden + n * dim, out); break;
    case Pooling::kMean:
    case Pooling::kNone: {
      std::vector<double> sum(dim, 0.0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < dim; ++i) sum[i] += hidden[r * dim + i];
      for (int64_t i = 0; i < dim; ++i) out[i] = static_cast<float>(sum[i] / static_cast<double>(n));
      break;
    }
  }
  if (normalize) {
    // sentence-transformers' Normalize: x / max(||x||, 1e-12).
    const double norm = std::sqrt(kernels::vec_sum_sq(out, dim));
    const float inv = static_cast<float>(1.0 / std::max(norm, 1e-12));
    for (int64_t i = 0; i < dim; ++i) out[i] *= inv;
  }
}

std::vector<float> embed_batch(Model& m, ThreadPool& pool, Arena& arena, const std::vector<std::vector<int32_t>>& texts,
                               const EmbedOptions& opt, const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t D = m.config().model_dim, n_texts = static_cast<int64_t>(texts.size());
  std::vector<float> out(n_texts * D);
  std::map<int64_t, std::vector<int64_t>> by_len;  // token count -> texts of that count
  for (int64_t i = 0; i < n_texts; ++i) {
    CHECK(!texts[i].empty() && static_cast<int64_t>(texts[i].size()) <= m.config().ctx);
    by_len[static_cast<int64_t>(texts[i].size())].push_back(i);
  }
  int64_t done = 0;
  std::vector<int32_t> tokens;
  std::vector<float> hidden;
  for (const auto& [len, ids] : by_len) {
    const int64_t per_pass = std::max<int64_t>(1, std::min(opt.batch, opt.batch_tokens / len));
    for (size_t first = 0; first < ids.size(); first += per_pass) {
      const int64_t batch = std::min<int64_t>(per_pass, static_cast<int64_t>(ids.size() - first));
      tokens.clear();
      for (int64_t b = 0; b < batch; ++b) tokens.insert(tokens.end(), texts[ids[first + b]].begin(), texts[ids[first + b]].end());
      hidden.resize(batch * len * D);
      arena.reset();
      m.forward_hidden(pool, arena, tokens.data(), batch, len, hidden.data());
      for (int64_t b = 0; b < batch; ++b)
        pool_hidden(hidden.data() + b * len * D, len, D, opt.pooling, opt.normalize, out.data() + ids[first + b] * D);
      done += batch;
      if (progress) progress(done, n_texts);
    }
  }
  return out;
}

}  // namespace longctx::model
