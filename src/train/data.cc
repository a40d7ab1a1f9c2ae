#include "train/data.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/atomic_file.h"

namespace longctx::train {

CorpusSplit split_corpus(const std::string& text) {
  constexpr size_t kBlock = 16 * 1024;
  CorpusSplit s;
  for (size_t i = 0, b = 0; i < text.size(); i += kBlock, ++b) {
    (b % 20 == 19 ? s.val : s.train).append(text, i, kBlock);
  }
  return s;
}

Expected<ChatData> read_chat_jsonl(const std::string& path, const tokenizer::BpeTokenizer& tok, const RenderChat& render) {
  auto text = io::read_file(path);
  if (!text.ok()) return text.status().Wrap("chat data");
  ChatData out;
  int64_t line_no = 0, index = 0;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    const std::string line = text->substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto bad = [&](const std::string& m) { return Status::Error(path + ":" + std::to_string(line_no) + ": " + m); };
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) return bad("not a JSON object");
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
      return bad("expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
    std::vector<ChatTurn> turns;
    for (const auto& m : j["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string())
        return bad("every message needs a string \"role\" and \"content\"");
      const std::string role = m["role"];
      if (role != "system" && role != "user" && role != "assistant")
        return bad("unknown role '" + role + "' (system, user or assistant)");
      turns.push_back({role, m["content"]});
    }
    // The whole conversation, and for each assistant turn the token span between the prompt
    // that leads to it and the conversation up to its end.
    const std::vector<int32_t> all = tok.encode_special(render(turns, false));
    std::vector<uint8_t> mask(all.size(), 0);
    bool any = false;
    for (size_t i = 0; i < turns.size(); ++i) {
      if (turns[i].role != "assistant") continue;
      const std::vector<ChatTurn> before(turns.begin(), turns.begin() + static_cast<std::ptrdiff_t>(i));
      const std::vector<ChatTurn> upto(turns.begin(), turns.begin() + static_cast<std::ptrdiff_t>(i + 1));
      const size_t a = tok.encode_special(render(before, true)).size();
      const size_t b = std::min(all.size(), tok.encode_special(render(upto, false)).size());
      for (size_t t = a; t < b; ++t) mask[t] = 1;
      any |= b > a;
    }
    if (!any) return bad("the conversation has no assistant turn to learn from");
    TokenStream& s = index % 20 == 19 ? out.val : out.train;
    s.starts.push_back(static_cast<int64_t>(s.tokens.size()));
    for (size_t t = 0; t < all.size(); ++t) {
      s.tokens.push_back(all[t]);
      s.token_bytes.push_back(static_cast<uint16_t>(std::min<size_t>(65535, tok.token_bytes(all[t]).size())));
      s.trained.push_back(mask[t]);
      if (s.trained.back() && &s == &out.train) ++out.assistant_tokens;
    }
    ++index;
  }
  out.conversations = index;
  if (index < 20)
    return Status::Error("chat data '" + path + "' has " + std::to_string(index) +
                         " conversations; every 20th is held out, so at least 20 are needed");
  return out;
}

Expected<std::string> read_corpus(const std::string& path) {
  auto text = io::read_file(path);
  if (!text.ok()) return text.status().Wrap("corpus");
  if (text->empty()) return Status::Error("corpus '" + path + "' is empty");
  return text;
}

TokenStream tokenize_stream(const tokenizer::BpeTokenizer& tok, const std::string& text) {
  TokenStream s;
  s.tokens = tok.encode(text);
  s.token_bytes.resize(s.tokens.size());
  for (size_t i = 0; i < s.tokens.size(); ++i)
    s.token_bytes[i] = static_cast<uint16_t>(std::min<size_t>(65535, tok.token_bytes(s.tokens[i]).size()));
  return s;
}

void Batcher::sample(Rng& rng, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const {
  const int64_t n = static_cast<int64_t>(s_->tokens.size());
  CHECK(n > ctx_);
  inputs.resize(batch_ * ctx_);
  targets.resize(batch_ * ctx_);
  for (int64_t b = 0; b < batch_; ++b) {
    int64_t o;
    if (s_->starts.empty()) {
      o = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - ctx_)));
    } else {
      o = std::min(s_->starts[rng.below(s_->starts.size())], n - ctx_ - 1);
    }
    std::memcpy(&inputs[b * ctx_], &s_->tokens[o], ctx_ * sizeof(int32_t));
    std::memcpy(&targets[b * ctx_], &s_->tokens[o + 1], ctx_ * sizeof(int32_t));
    if (!s_->trained.empty())
      for (int64_t t = 0; t < ctx_; ++t)
        if (!s_->trained[o + 1 + t]) targets[b * ctx_ + t] = -1;
  }
}

int64_t Batcher::sequential_batches() const {
  const int64_t windows = (static_cast<int64_t>(s_->tokens.size()) - 1) / ctx_;
  return windows / batch_;
}

bool Batcher::sequential(int64_t index, std::vector<int32_t>& inputs, std::vector<int32_t>& targets,
                         int64_t* target_bytes) const {
  if (index >= sequential_batches()) return false;
  inputs.resize(batch_ * ctx_);
  targets.resize(batch_ * ctx_);
  int64_t bytes = 0;
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t o = (index * batch_ + b) * ctx_;
    std::memcpy(&inputs[b * ctx_], &s_->tokens[o], ctx_ * sizeof(int32_t));
    std::memcpy(&targets[b * ctx_], &s_->tokens[o + 1], ctx_ * sizeof(int32_t));
    for (int64_t t = 0; t < ctx_; ++t) {
      if (s_->counts(o + 1 + t))
        bytes += s_->token_bytes[o + 1 + t];
      else
        targets[b * ctx_ + t] = -1;
    }
  }
  if (target_bytes) *target_bytes = bytes;
  return true;
}

}  // namespace longctx::train
