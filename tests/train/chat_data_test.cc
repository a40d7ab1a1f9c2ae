// Chat data for supervised fine-tuning (train::read_chat_jsonl) with SmolLM2's tokenizer and
// the chatml template: the tokens the loss counts are exactly the assistant's answers and the
// token ending each answer, in every turn of a multi-turn conversation; the prompt, system and
// user text never count; the batcher marks the rest as ignored targets (-1); every 20th
// conversation is held out; bad lines are refused with their line number.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "infer/chat_template.h"
#include "model/pretrained.h"
#include "train/data.h"

namespace longctx {
namespace {

const std::string kModel = std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

std::string write(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string conversation(int i) {
  return "{\"messages\": [{\"role\": \"system\", \"content\": \"Answer briefly.\"}, "
         "{\"role\": \"user\", \"content\": \"What is " + std::to_string(i) + " plus one?\"}, "
         "{\"role\": \"assistant\", \"content\": \"It is " + std::to_string(i + 1) + ".\"}, "
         "{\"role\": \"user\", \"content\": \"And times two?\"}, "
         "{\"role\": \"assistant\", \"content\": \"That makes " + std::to_string(2 * (i + 1)) + ".\"}]}\n";
}

struct Env {
  std::optional<tokenizer::BpeTokenizer> tok;
  infer::ChatTemplate tmpl = *infer::ChatTemplate::by_name("chatml");
  Env() {
    auto t = model::load_model_tokenizer(kModel);
    if (t.ok()) tok.emplace(std::move(*t));
  }
  train::RenderChat render() const {
    return [this](const std::vector<train::ChatTurn>& turns, bool gen) {
      std::vector<infer::ChatMessage> ms;
      for (const auto& t : turns) ms.push_back({t.role, t.content});
      return tmpl.render(ms, gen);
    };
  }
};

TEST(ChatData, LossCountsExactlyTheAnswers) {
  Env env;
  ASSERT_TRUE(env.tok) << kModel << " is missing: run `bash scripts/fetch_model.sh`";
  std::string text;
  for (int i = 0; i < 40; ++i) text += (i == 7 ? "\n" : "") + conversation(i);  // a blank line is skipped
  auto d = train::read_chat_jsonl(write("chat.jsonl", text), *env.tok, env.render());
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->conversations, 40);
  EXPECT_EQ(d->train.starts.size(), 38u);  // conversations 19 and 39 held out
  EXPECT_EQ(d->val.starts.size(), 2u);
  // Each conversation's counted tokens decode to its two answers, each ending its turn.
  const auto& s = d->train;
  for (size_t c = 0; c < s.starts.size(); ++c) {
    const int64_t a = s.starts[c], b = c + 1 < s.starts.size() ? s.starts[c + 1] : static_cast<int64_t>(s.tokens.size());
    std::string counted, spans;
    std::vector<int32_t> run;
    for (int64_t t = a; t <= b; ++t) {
      if (t < b && s.trained[t]) {
        run.push_back(s.tokens[t]);
        continue;
      }
      if (!run.empty()) spans += "[" + env.tok->decode(run, true) + "]";
      run.clear();
    }
    const int i = c < 19 ? static_cast<int>(c) : static_cast<int>(c) + 1;
    EXPECT_EQ(spans, "[It is " + std::to_string(i + 1) + ".<|im_end|>\n][That makes " + std::to_string(2 * (i + 1)) +
                         ".<|im_end|>\n]")
        << "conversation " << c;
  }
  // The batcher: targets that do not count are -1, the others the next token.
  train::Batcher batcher(&d->train, 4, 32);
  Rng rng(1);
  std::vector<int32_t> in, tg;
  batcher.sample(rng, in, tg);
  int counted = 0;
  for (int64_t b = 0; b < 4; ++b) {
    // Windows start at a conversation.
    bool at_start = false;
    for (int64_t st : s.starts) at_start |= std::equal(in.begin() + b * 32, in.begin() + b * 32 + 32, s.tokens.begin() + st);
    EXPECT_TRUE(at_start) << "window " << b;
    for (int t = 0; t < 32; ++t) counted += tg[b * 32 + t] >= 0;
  }
  EXPECT_GT(counted, 0);
  EXPECT_LT(counted, 4 * 32 / 2);
}

TEST(ChatData, BadLinesAreRefusedWithTheirLineNumber) {
  Env env;
  ASSERT_TRUE(env.tok) << kModel << " is missing";
  std::string good;
  for (int i = 0; i < 25; ++i) good += conversation(i);
  auto err = [&](const std::string& text) {
    auto d = train::read_chat_jsonl(write("bad.jsonl", text), *env.tok, env.render());
    return d.ok() ? std::string("accepted") : d.status().message();
  };
  EXPECT_NE(err(good + "{not json\n").find("bad.jsonl:26: not a JSON object"), std::string::npos) << err(good + "{not json\n");
  EXPECT_NE(err("{\"text\": \"hi\"}\n" + good).find(":1: expected {\"messages\""), std::string::npos);
  EXPECT_NE(err(good + "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n").find("unknown role 'robot'"),
            std::string::npos);
  EXPECT_NE(err(good + "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n").find("no assistant turn"),
            std::string::npos);
  EXPECT_NE(err(good + "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}\n").find("string \"role\" and \"content\""),
            std::string::npos);
  EXPECT_NE(err(conversation(1) + conversation(2)).find("at least 20 are needed"), std::string::npos);
  EXPECT_NE(err("").find("0 conversations"), std::string::npos);
}

}  // namespace
}  // namespace longctx
