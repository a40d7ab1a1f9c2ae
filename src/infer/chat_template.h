// Chat templates: turning a conversation into the prompt text a chat model was trained on.
// The formats are recognised from the Jinja template a GGUF stores in tokenizer.chat_template
// (markers unique to each), or chosen by name (`--chat-template`):
//   chatml   <|im_start|>ROLE\nCONTENT<|im_end|>\n ... <|im_start|>assistant\n
//            (SmolLM2, Qwen); a default system message written into the template is kept.
//   llama2   <s>[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST] ANSWER </s><s>[INST] ...
//   llama3   <|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>...
//   mistral  <s>[INST] SYSTEM\n\nUSER [/INST]ANSWER</s>[INST] USER [/INST]
// Special-token text in the result (<|im_start|>, <s>, ...) is meant to be tokenized with
// special tokens parsed.
#pragma once
#include <string>
#include <vector>

#include "core/status.h"

namespace longctx::infer {

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

class ChatTemplate {
 public:
  enum class Format { kChatml, kLlama2, kLlama3, kMistral };

  // From the template text in a model; an error naming the problem when no format matches.
  static Expected<ChatTemplate> detect(const std::string& jinja);
  // chatml, llama2, llama3 or mistral.
  static Expected<ChatTemplate> by_name(const std::string& name);
  // `name` when one is given (by_name), else the model's own template (detect).
  static Expected<ChatTemplate> choose(const std::string& model_jinja, const std::string& name) {
    return name.empty() ? detect(model_jinja) : by_name(name);
  }

  // The prompt for `messages`; with add_generation_prompt it ends where the assistant's answer
  // begins.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // Text that ends an assistant turn (generation stops there as well as at EOS).
  std::string end_of_turn() const;
  const char* name() const;
  Format format() const { return format_; }
  const std::string& default_system() const { return default_system_; }

 private:
  Format format_ = Format::kChatml;
  std::string default_system_;
};

}  // namespace longctx::infer
