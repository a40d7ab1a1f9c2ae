// Text embeddings: an encoder's (or any model's) last hidden states pooled into one vector per
// text, as sentence-transformers and llama.cpp's embedding mode give them. A text's tokens are
// the tokenizer's ids between its BOS ([CLS]) and EOS ([SEP]) where it adds them, cut to the
// model's context (the end token kept). Texts of equal token count run together in one pass
// (batch rows), which changes a text's vector only by float rounding.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/bpe.h"

namespace longctx::model {

struct EmbedOptions {
  Pooling pooling = Pooling::kMean;
  bool normalize = true;
  int64_t max_tokens = 0;      // 0: the model's context
  // Texts of one length run together, up to batch texts and batch_tokens rows per pass.
  int64_t batch = 32;
  int64_t batch_tokens = 8192;
};

// The model's own pooling and normalisation (Model::config()), everything else default.
EmbedOptions default_embed_options(const ModelConfig& c);

// The ids a text embeds as (BOS / EOS as the tokenizer adds them, cut to max_tokens). Error for
// an empty (blank) text, or one with no tokens at all (no BOS / EOS either).
Expected<std::vector<int32_t>> embed_tokens(const tokenizer::BpeTokenizer& tok, const std::string& text,
                                            int64_t max_tokens);

// Pools hidden states [n, dim] of one text into out [dim].
void pool_hidden(const float* hidden, int64_t n, int64_t dim, Pooling pooling, bool normalize, float* out);

// Embeddings [texts, model_dim] of tokenized texts. progress(done, total) after each pass.
std::vector<float> embed_batch(Model& m, ThreadPool& pool, Arena& arena, const std::vector<std::vector<int32_t>>& texts,
                               const EmbedOptions& opt,
                               const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace longctx::model
