#include "infer/chat_template.h"

namespace longctx::infer {
namespace {

bool has(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// ChatML templates may print a system message of their own when the conversation has none:
// the text between "<|im_start|>system\n" and "<|im_end|>" inside the template.
std::string chatml_default_system(const std::string& jinja) {
  const std::string open = "<|im_start|>system\n";
  const size_t b = jinja.find(open);
  if (b == std::string::npos) return "";
  const size_t e = jinja.find("<|im_end|>", b + open.size());
  if (e == std::string::npos) return "";
  const std::string text = jinja.substr(b + open.size(), e - b - open.size());
  // A template that prints message['content'] there has no default of its own.
  if (has(text, "{{") || has(text, "{%") || has(text, "'+") || has(text, "' +")) return "";
  return text;
}

}  // namespace

Expected<ChatTemplate> ChatTemplate::detect(const std::string& jinja) {
  ChatTemplate t;
  if (jinja.empty()) return Status::Error("the model has no chat template (tokenizer.chat_template); use setting 'chat_template'");
  if (has(jinja, "<|im_start|>")) {
    t.format_ = Format::kChatml;
    t.default_system_ = chatml_default_system(jinja);
  } else if (has(jinja, "<|start_header_id|>")) {
    t.format_ = Format::kLlama3;
  } else if (has(jinja, "[INST]") && has(jinja, "<<SYS>>")) {
    t.format_ = Format::kLlama2;
  } else if (has(jinja, "[INST]")) {
    t.format_ = Format::kMistral;
  } else {
    return Status::Error("unknown chat template (not ChatML, Llama 2, Llama 3 or Mistral); use setting 'chat_template' NAME");
  }
  return t;
}

Expected<ChatTemplate> ChatTemplate::by_name(const std::string& name) {
  ChatTemplate t;
  if (name == "chatml") t.format_ = Format::kChatml;
  else if (name == "llama2") t.format_ = Format::kLlama2;
  else if (name == "llama3") t.format_ = Format::kLlama3;
  else if (name == "mistral") t.format_ = Format::kMistral;
  else return Status::Error("unknown chat template '" + name + "' (expected chatml, llama2, llama3 or mistral)");
  return t;
}

const char* ChatTemplate::name() const {
  switch (format_) {
    case Format::kChatml: return "chatml";
    case Format::kLlama2: return "llama2";
    case Format::kLlama3: return "llama3";
    case Format::kMistral: return "mistral";
  }
  return "?";
}

std::string ChatTemplate::end_of_turn() const {
  switch (format_) {
    case Format::kChatml: return "<|im_end|>";
    case Format::kLlama3: return "<|eot_id|>";
    case Format::kLlama2:
    case Format::kMistral: return "</s>";
  }
  return "";
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out;
  switch (format_) {
    case Format::kChatml: {
      if (!default_system_.empty() && !messages.empty() && messages[0].role != "system")
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    }
    case Format::kLlama3: {
      out += "<|begin_of_text|>";
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + strip(m.content) + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    }
    case Format::kLlama2:
    case Format::kMistral: {
      // The system message is folded into the first user turn.
      std::string system;
      size_t i = 0;
      if (!messages.empty() && messages[0].role == "system") system = messages[i++].content;
      bool first_user = true;
      for (; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (m.role == "user") {
          std::string content = strip(m.content);
          if (first_user && !system.empty())
            content = format_ == Format::kLlama2 ? "<<SYS>>\n" + strip(system) + "\n<</SYS>>\n\n" + content
                                                 : strip(system) + "\n\n" + content;
          if (format_ == Format::kLlama2 || first_user) out += "<s>";
          out += "[INST] " + content + " [/INST]";
          first_user = false;
        } else if (m.role == "assistant") {
          out += format_ == Format::kLlama2 ? " " + strip(m.content) + " </s>" : strip(m.content) + "</s>";
        }
      }
      break;
    }
  }
  return out;
}

}  // namespace longctx::infer
