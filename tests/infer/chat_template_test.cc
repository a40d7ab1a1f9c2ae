// Chat templates: ChatML against SmolLM2's own Jinja template rendered by jinja2
// (tests/infer/make_chat_golden.py), detection of each format, and the folding of system
// messages in the [INST] formats.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "infer/chat_template.h"

namespace longctx {
namespace {

TEST(ChatTemplate, ChatmlEqualsJinjaRenderingOfSmolLM2Template) {
  std::ifstream f(std::string(LONGCTX_SOURCE_DIR) + "/tests/infer/golden/chat_smollm2.json");
  ASSERT_TRUE(f) << "golden file missing";
  const auto j = nlohmann::json::parse(f);
  auto t = infer::ChatTemplate::detect(j["template"].get<std::string>());
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_STREQ(t->name(), "chatml");
  EXPECT_EQ(t->default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  int n = 0;
  for (const auto& c : j["cases"]) {
    std::vector<infer::ChatMessage> msgs;
    for (const auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
    EXPECT_EQ(t->render(msgs, c["add_generation_prompt"]), c["rendered"].get<std::string>()) << "case " << n;
    ++n;
  }
  EXPECT_EQ(n, 10);
}

TEST(ChatTemplate, DetectsEachFormatAndRejectsUnknown) {
  EXPECT_STREQ(infer::ChatTemplate::detect("{{ '<|start_header_id|>' + role }}")->name(), "llama3");
  EXPECT_STREQ(infer::ChatTemplate::detect("{{ '[INST] <<SYS>>' }}")->name(), "llama2");
  EXPECT_STREQ(infer::ChatTemplate::detect("{{ '[INST] ' + content + ' [/INST]' }}")->name(), "mistral");
  EXPECT_FALSE(infer::ChatTemplate::detect("{{ '### Human: ' }}").ok());
  EXPECT_FALSE(infer::ChatTemplate::detect("").ok());
  EXPECT_FALSE(infer::ChatTemplate::by_name("alpaca").ok());
  // A ChatML template that prints the conversation's own system message has no default.
  auto t = infer::ChatTemplate::detect("{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->default_system(), "");
}

TEST(ChatTemplate, InstFormatsFoldTheSystemMessage) {
  const std::vector<infer::ChatMessage> msgs = {
      {"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello."}, {"user", "Bye"}};
  EXPECT_EQ(infer::ChatTemplate::by_name("llama2")->render(msgs, true),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(infer::ChatTemplate::by_name("mistral")->render(msgs, true),
            "<s>[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] Bye [/INST]");
  EXPECT_EQ(infer::ChatTemplate::by_name("llama3")->render({{"user", "Hi"}}, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

}  // namespace
}  // namespace longctx
