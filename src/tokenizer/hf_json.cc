// Hugging Face tokenizer.json / tokenizer_config.json -> GgufVocab (see hf_json.h for the forms
// supported): the JSON reading every family shares (model, vocabulary, merges, special tokens,
// chat template) and the entry points; each family's own conversion is in its file
// (hf_json_internal.h). The JSON comes from outside the program: it is parsed without exceptions
// and every member's type is checked before it is read, so any input gives either a vocabulary
// or one Status; a json exception that slipped through would still be caught at the entry points.
#include "tokenizer/hf_json.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/hf_json_internal.h"

namespace longctx::tokenizer {
namespace hf_json {

// ---- JSON members (hf_json_internal.h) ----

std::string clip(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole characters
  return std::string(s.substr(0, cut)) + "...";
}

std::string quote(std::string_view s) { return "'" + clip(s, 60) + "'"; }

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

namespace {

// A short human-readable form of a normalizer, pre-tokenizer, decoder or pattern for messages:
// Sequence[Split(behavior="Isolated", invert=false, pattern=Regex("...")), ByteLevel(...)].
std::string describe_rec(const Json& j, int depth) {
  if (depth > 8) return "...";
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + describe_rec(j[i], depth + 1);
    return out + "]";
  }
  if (!j.is_object()) return clip(dump(j), 60);
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) {  // {"Regex": "..."}, {"String": " "}
    std::string out;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out += (out.empty() ? "" : ", ") + it.key() + "(" + describe_rec(it.value(), depth + 1) + ")";
    }
    return out.empty() ? "{}" : out;
  }
  const std::string type = t->get<std::string>();
  std::string args, seq;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "type") continue;
    if (type == "Sequence" && it.value().is_array()) {
      seq = describe_rec(it.value(), depth + 1);
      continue;
    }
    args += (args.empty() ? "" : ", ") + it.key() + "=" + describe_rec(it.value(), depth + 1);
  }
  if (type == "Sequence") return "Sequence" + (seq.empty() ? "[]" : seq);
  return args.empty() ? type : type + "(" + args + ")";
}

}  // namespace

std::string describe(const Json* j) { return j == nullptr ? "none" : clip(describe_rec(*j, 0), 400); }

const Json* member(const Json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string kind(const Json& j) {
  const std::string t = j.type_name();
  return (t == "array" || t == "object" ? "an " : "a ") + t;
}

std::string type_of(const Json& o) {
  const Json* t = member(o, "type");
  return t != nullptr && t->is_string() ? t->get<std::string>() : std::string();
}

Status read_bool(const Json& o, const char* key, bool* out, const std::string& where) {
  const Json* v = member(o, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) {
    return Status::Error(where + "." + key + " is " + kind(*v) + ", not a boolean");
  }
  *out = v->get<bool>();
  return Status::Ok();
}

Expected<std::optional<std::string>> read_string(const Json& o, const char* key, const std::string& where) {
  const Json* v = member(o, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return Status::Error(where + "." + key + " is " + kind(*v) + ", not a string");
  return std::optional<std::string>(v->get<std::string>());
}

std::optional<int64_t> as_int(const Json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

Expected<std::vector<const Json*>> steps_of(const Json& j, const char* list_key, const std::string& what) {
  std::vector<const Json*> steps;
  if (type_of(j) != "Sequence") {
    steps.push_back(&j);
    return steps;
  }
  const Json* list = member(j, list_key);
  if (list == nullptr || !list->is_array()) {
    return Status::Error(what + " Sequence has no \"" + list_key + "\" list");
  }
  for (const Json& s : *list) steps.push_back(&s);
  return steps;
}

bool string_member_is(const Json& o, const char* key, std::string_view text) {
  const Json* v = member(o, key);
  return v != nullptr && v->is_string() && v->get<std::string>() == text;
}

namespace {

// ---------------------------------------------------------------------------------------------
// The vocabulary: model.vocab and added_tokens.

// A token of model.vocab or added_tokens: non-empty text and an integer id in [0, kMaxVocabSize).
// Ids are checked against the limit before anything is sized by them.
Status check_token(const std::string& text, const Json& id_json, const std::string& where) {
  const int64_t kLimit = BpeTokenizer::kMaxVocabSize;
  const std::optional<int64_t> id = as_int(id_json);
  if (!id) return Status::Error(where + " id is " + kind(id_json) + ", not an integer");
  if (*id < 0 || *id >= kLimit) {
    return Status::Error(where + " id " + std::to_string(*id) + " is outside [0, " + std::to_string(kLimit) + ")");
  }
  if (text.empty()) return Status::Error(where + " is empty");
  return Status::Ok();
}

// added_tokens into by_id (text of each id) and *added ((id, special), file order); whether each
// is normalized into v.added_normalized.
Status read_added_tokens(const Json& list, std::unordered_map<int32_t, std::string>* by_id,
                         std::vector<std::pair<int32_t, bool>>* added, Vocab& v) {
  if (!list.is_array()) return Status::Error("added_tokens is " + kind(list) + ", not a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& t = list[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) return Status::Error(where + " is " + kind(t) + ", not an object");
    auto content = read_string(t, "content", where);
    if (!content.ok()) return content.status();
    if (!content->has_value()) return Status::Error(where + " has no content");
    const Json* id_json = member(t, "id");
    if (id_json == nullptr) return Status::Error(where + " " + quote(**content) + " has no id");
    LONGCTX_RETURN_IF_ERROR(check_token(**content, *id_json, where + " " + quote(**content)));
    const int32_t id = static_cast<int32_t>(*as_int(*id_json));
    bool special = false, lstrip = false, rstrip = false, single_word = false;
    LONGCTX_RETURN_IF_ERROR(read_bool(t, "special", &special, where));
    LONGCTX_RETURN_IF_ERROR(read_bool(t, "lstrip", &lstrip, where));
    LONGCTX_RETURN_IF_ERROR(read_bool(t, "rstrip", &rstrip, where));
    LONGCTX_RETURN_IF_ERROR(read_bool(t, "single_word", &single_word, where));
    bool normalized = !special;  // HF's default
    LONGCTX_RETURN_IF_ERROR(read_bool(t, "normalized", &normalized, where));
    if (lstrip || rstrip || single_word) {
      return Status::Error(where + " " + quote(**content) + ": lstrip, rstrip and single_word are not supported");
    }
    auto [pos, inserted] = by_id->emplace(id, **content);
    if (!inserted && pos->second != **content) {
      return Status::Error(where + " " + quote(**content) + " has id " + std::to_string(id) + ", which is " +
                           quote(pos->second));
    }
    added->emplace_back(id, special);
    v.added_normalized.push_back(normalized);
  }
  return Status::Ok();
}

Status read_vocab(const Json& model, const Json& root, Vocab& v) {
  const Json* vocab = member(model, "vocab");
  if (vocab == nullptr) return Status::Error("model.vocab is missing");
  if (!vocab->is_object()) return Status::Error("model.vocab is " + kind(*vocab) + ", not an object of token -> id");
  std::unordered_map<int32_t, std::string> by_id;
  by_id.reserve(vocab->size());
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string where = "model.vocab " + quote(it.key());
    LONGCTX_RETURN_IF_ERROR(check_token(it.key(), it.value(), where));
    const int32_t id = static_cast<int32_t>(*as_int(it.value()));
    auto [pos, inserted] = by_id.emplace(id, it.key());
    if (!inserted) {
      return Status::Error("model.vocab: " + quote(pos->second) + " and " + quote(it.key()) + " both have id " +
                           std::to_string(id));
    }
  }
  std::vector<std::pair<int32_t, bool>> added;  // (id, special)
  if (const Json* list = member(root, "added_tokens")) {
    LONGCTX_RETURN_IF_ERROR(read_added_tokens(*list, &by_id, &added, v));
  }
  if (by_id.empty()) return Status::Error("the vocabulary is empty");
  int32_t max_id = 0;
  for (const auto& [id, text] : by_id) max_id = std::max(max_id, id);
  const size_t n = static_cast<size_t>(max_id) + 1;
  if (by_id.size() != n) {
    int32_t hole = 0;
    while (by_id.count(hole)) ++hole;
    return Status::Error("token ids are not dense: " + std::to_string(by_id.size()) + " tokens (model.vocab and " +
                         "added_tokens) have ids up to " + std::to_string(max_id) + ", and none has id " +
                         std::to_string(hole));
  }
  v.text.resize(n);
  v.type.assign(n, static_cast<int32_t>(TokenType::kNormal));
  v.id.reserve(n);
  for (auto& [id, text] : by_id) {
    auto [pos, inserted] = v.id.emplace(text, id);
    if (!inserted) {
      return Status::Error("token " + quote(text) + " has two ids, " + std::to_string(std::min(pos->second, id)) +
                           " and " + std::to_string(std::max(pos->second, id)));
    }
    v.text[id] = std::move(text);
  }
  for (const auto& [id, special] : added) {
    v.added.push_back(id);
    v.type[id] = static_cast<int32_t>(special ? TokenType::kControl : TokenType::kUserDefined);
  }
  return Status::Ok();
}

// model.merges as (left id, right id), rank order; both sides and their join must be tokens.
Expected<std::vector<std::pair<int32_t, int32_t>>> read_merges(const Json& model, const Vocab& v) {
  std::vector<std::pair<int32_t, int32_t>> out;
  const Json* merges = member(model, "merges");
  if (merges == nullptr) return out;
  if (!merges->is_array()) return Status::Error("model.merges is " + kind(*merges) + ", not a list");
  out.reserve(merges->size());
  for (size_t r = 0; r < merges->size(); ++r) {
    const Json& m = (*merges)[r];
    const std::string where = "model.merges[" + std::to_string(r) + "]";
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Status::Error(where + " " + quote(s) + " is not two tokens separated by one space");
      }
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      return Status::Error(where + " is " + clip(dump(m), 60) + ", not \"left right\" or [left, right]");
    }
    const std::string joined = left + right;
    int32_t ids[3];
    const std::string* parts[3] = {&left, &right, &joined};
    const char* roles[3] = {"left side", "right side", "joined result"};
    for (int k = 0; k < 3; ++k) {
      auto it = v.id.find(*parts[k]);
      if (it == v.id.end()) {
        return Status::Error(where + " (" + quote(left) + ", " + quote(right) + "): " + roles[k] + " " +
                             quote(*parts[k]) + " is not a token");
      }
      ids[k] = it->second;
    }
    out.emplace_back(ids[0], ids[1]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// post_processor: a TemplateProcessing whose single sequence starts with a special token adds
// that token (BOS).

Status template_bos(const Json* post, const Vocab& v, std::optional<int32_t>* bos) {
  if (post == nullptr) return Status::Ok();
  auto steps = steps_of(*post, "processors", "post_processor");
  if (!steps.ok()) return steps.status();
  for (const Json* s : *steps) {
    if (type_of(*s) != "TemplateProcessing") continue;
    const Json* single = member(*s, "single");
    if (single == nullptr || !single->is_array()) {
      return Status::Error("post_processor TemplateProcessing has no \"single\" list");
    }
    if (single->empty()) continue;
    const Json* first = member((*single)[0], "SpecialToken");
    if (first == nullptr) continue;
    auto name = read_string(*first, "id", "post_processor TemplateProcessing single[0].SpecialToken");
    if (!name.ok()) return name.status();
    if (!name->has_value()) return Status::Error("post_processor TemplateProcessing single[0] has no id");
    // special_tokens maps the name to its ids; a name that is one token's text needs no entry.
    const Json* specials = member(*s, "special_tokens");
    const Json* entry = specials != nullptr ? member(*specials, (*name)->c_str()) : nullptr;
    const Json* ids = entry != nullptr ? member(*entry, "ids") : nullptr;
    if (ids != nullptr && ids->is_array() && ids->size() == 1 && as_int((*ids)[0])) {
      const int64_t id = *as_int((*ids)[0]);
      if (id < 0 || id >= static_cast<int64_t>(v.text.size())) {
        return Status::Error("post_processor: special token " + quote(**name) + " has id " + std::to_string(id) +
                             ", outside the vocabulary");
      }
      *bos = static_cast<int32_t>(id);
    } else {
      auto it = v.id.find(**name);
      if (it == v.id.end()) {
        return Status::Error("post_processor: special token " + quote(**name) + " is not one token");
      }
      *bos = it->second;
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json.

struct Config {
  std::optional<int32_t> bos, eos, pad, unk;
  std::optional<bool> add_bos;
  std::optional<std::string> chat_template;
};

Status read_config(const Json& cfg, const Vocab& v, Config& c) {
  if (!cfg.is_object()) return Status::Error("is " + kind(cfg) + ", not an object");
  const std::pair<const char*, std::optional<int32_t>*> fields[] = {
      {"bos_token", &c.bos}, {"eos_token", &c.eos}, {"pad_token", &c.pad}, {"unk_token", &c.unk}};
  for (const auto& [key, out] : fields) {
    const Json* t = member(cfg, key);
    if (t == nullptr) continue;
    std::string text;
    if (t->is_string()) {
      text = t->get<std::string>();
    } else if (t->is_object()) {
      const Json* content = member(*t, "content");
      if (content == nullptr || !content->is_string()) {
        return Status::Error(std::string(key) + " is an object without a string \"content\"");
      }
      text = content->get<std::string>();
    } else {
      return Status::Error(std::string(key) + " is " + kind(*t) + ", not a string or an object with \"content\"");
    }
    auto it = v.id.find(text);
    if (it == v.id.end())
      return Status::Error(std::string(key) + " " + quote(text) + " is not a token of tokenizer.json");
    *out = it->second;
  }
  if (const Json* b = member(cfg, "add_bos_token")) {
    if (!b->is_boolean()) return Status::Error("add_bos_token is " + kind(*b) + ", not a boolean");
    c.add_bos = b->get<bool>();
  }
  if (const Json* t = member(cfg, "chat_template")) {
    if (t->is_string()) {
      c.chat_template = t->get<std::string>();
    } else if (t->is_array()) {
      c.chat_template = std::string();
      for (size_t i = 0; i < t->size(); ++i) {
        const Json& e = (*t)[i];
        const Json* name = member(e, "name");
        const Json* tmpl = member(e, "template");
        if (name == nullptr || !name->is_string() || tmpl == nullptr || !tmpl->is_string()) {
          return Status::Error("chat_template[" + std::to_string(i) +
                               "] is not an object with string \"name\" and \"template\"");
        }
        if (name->get<std::string>() == "default") c.chat_template = tmpl->get<std::string>();
      }
    } else {
      return Status::Error("chat_template is " + kind(*t) + ", not a string or a list of {name, template}");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json as a whole.

// The model's flags that the families read.
struct ModelFlags {
  bool byte_fallback = false, ignore_merges = false, fuse_unk = false;
  std::optional<std::string> unk_text;  // model.unk_token
};

// Checks model.type (BPE only), refuses BPE dropout and subword affixes (longctx cannot honour
// them), and reads the flags.
Status read_model_flags(const Json& model, ModelFlags* f) {
  auto model_type = read_string(model, "type", "model");
  if (!model_type.ok()) return model_type.status();
  if (!model_type->has_value()) return Status::Error("model.type is missing");
  if (**model_type != "BPE") {
    return Status::Error("model type " + quote(**model_type) + " is not supported (only BPE and WordPiece)");
  }
  if (const Json* dropout = member(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      return Status::Error("model.dropout is " + clip(dump(*dropout), 30) + "; BPE dropout is not supported");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto s = read_string(model, key, "model");
    if (!s.ok()) return s.status();
    if (s->has_value() && !(*s)->empty()) {
      return Status::Error(std::string("model.") + key + " " + quote(**s) + " is not supported");
    }
  }
  LONGCTX_RETURN_IF_ERROR(read_bool(model, "byte_fallback", &f->byte_fallback, "model"));
  LONGCTX_RETURN_IF_ERROR(read_bool(model, "ignore_merges", &f->ignore_merges, "model"));
  LONGCTX_RETURN_IF_ERROR(read_bool(model, "fuse_unk", &f->fuse_unk, "model"));
  auto unk_text = read_string(model, "unk_token", "model");
  if (!unk_text.ok()) return unk_text.status();
  f->unk_text = std::move(*unk_text);
  return Status::Ok();
}

// v's bos, eos, pad, unk, add_bos and chat_template: tokenizer_config.json's where it says,
// else the post_processor's template (bos, add_bos) and model.unk_token (unk, which wins).
Status read_special_tokens(const Json& root, std::string_view config_json, const std::string& tj_name,
                           const std::string& cfg_name, const Vocab& vocab, std::optional<int32_t> model_unk,
                           GgufVocab* v) {
  std::optional<int32_t> template_bos_id;
  LONGCTX_RETURN_IF_ERROR(template_bos(member(root, "post_processor"), vocab, &template_bos_id).Wrap(tj_name));

  Config cfg;
  if (!config_json.empty()) {
    const Json c = Json::parse(config_json, nullptr, /*allow_exceptions=*/false);
    if (c.is_discarded()) return Status::Error(cfg_name + ": not valid JSON");
    LONGCTX_RETURN_IF_ERROR(read_config(c, vocab, cfg).Wrap(cfg_name));
  }
  v->bos = cfg.bos ? *cfg.bos : template_bos_id.value_or(-1);
  v->eos = cfg.eos.value_or(-1);
  v->pad = cfg.pad.value_or(-1);
  v->unk = model_unk ? *model_unk : cfg.unk.value_or(-1);
  v->add_bos = cfg.add_bos ? *cfg.add_bos : template_bos_id.has_value();
  v->chat_template = cfg.chat_template.value_or("");
  if (v->add_bos && v->bos < 0) {
    return Status::Error(cfg_name + ": add_bos_token is true, but there is no bos_token");
  }
  return Status::Ok();
}

Expected<GgufVocab> convert(std::string_view tokenizer_json, std::string_view config_json, const std::string& tj_name,
                            const std::string& cfg_name) {
  auto fail = [&](const Status& s) { return s.Wrap(tj_name); };
  const Json root = Json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Status::Error(tj_name + ": not valid JSON");
  if (!root.is_object()) return Status::Error(tj_name + ": is " + kind(root) + ", not an object");
  const Json* model = member(root, "model");
  if (model == nullptr) return Status::Error(tj_name + ": no \"model\"");
  if (!model->is_object()) return Status::Error(tj_name + ": model is " + kind(*model) + ", not an object");
  if (string_member_is(*model, "type", "WordPiece")) {
    Vocab vocab;
    LONGCTX_RETURN_IF_ERROR(fail(read_vocab(*model, root, vocab)));
    GgufVocab v;
    // pad (and unk, chat_template) from tokenizer_config.json; then the WordPiece specifics.
    LONGCTX_RETURN_IF_ERROR(read_special_tokens(root, config_json, tj_name, cfg_name, vocab, std::nullopt, &v));
    LONGCTX_RETURN_IF_ERROR(fail(convert_wpm(root, *model, vocab, &v)));
    v.tokens = std::move(vocab.text);
    v.token_types = std::move(vocab.type);
    Expected<BpeTokenizer> tok = BpeTokenizer::from_gguf(v);
    if (!tok.ok()) return fail(tok.status());
    return v;
  }
  ModelFlags flags;
  LONGCTX_RETURN_IF_ERROR(fail(read_model_flags(*model, &flags)));

  Vocab vocab;
  LONGCTX_RETURN_IF_ERROR(fail(read_vocab(*model, root, vocab)));
  auto merges = read_merges(*model, vocab);
  if (!merges.ok()) return fail(merges.status());

  BpeModel m;
  m.byte_fallback = flags.byte_fallback;
  m.ignore_merges = flags.ignore_merges;
  m.fuse_unk = flags.fuse_unk;
  m.merges = &*merges;
  if (flags.unk_text.has_value()) {
    auto it = vocab.id.find(*flags.unk_text);
    if (it == vocab.id.end())
      return Status::Error(tj_name + ": model.unk_token " + quote(*flags.unk_text) + " is not a token");
    m.unk = it->second;
  }
  m.normalizer = member(root, "normalizer");
  m.pre = member(root, "pre_tokenizer");
  m.decoder = member(root, "decoder");
  Expected<bool> byte_level = is_byte_level(m.pre);
  if (!byte_level.ok()) return fail(byte_level.status());

  GgufVocab v;
  if (*byte_level) {
    LONGCTX_RETURN_IF_ERROR(fail(convert_byte_level(m, vocab, &v)));
  } else if (m.byte_fallback) {
    LONGCTX_RETURN_IF_ERROR(fail(convert_spm(m, vocab, &v)));
  } else {
    return Status::Error(tj_name + ": BPE with pre-tokenizer " + describe(m.pre) + ", normalizer " +
                         describe(m.normalizer) +
                         " and no byte_fallback is not supported (neither byte-level nor SentencePiece-style BPE)");
  }
  LONGCTX_RETURN_IF_ERROR(read_special_tokens(root, config_json, tj_name, cfg_name, vocab, m.unk, &v));
  v.tokens = std::move(vocab.text);
  v.token_types = std::move(vocab.type);

  // What from_gguf makes of it: the checks it does (GPT-2 alphabet, specials in merges...), and
  // for "llama" whether the scores give exactly HF's merges.
  Expected<BpeTokenizer> tok = BpeTokenizer::from_gguf(v);
  if (!tok.ok()) return fail(tok.status());
  if (v.model == "llama") LONGCTX_RETURN_IF_ERROR(fail(check_spm_merges(*tok, v, *merges)));
  return v;
}

Expected<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Error(path.string() + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::Error(path.string() + ": read error");
  return ss.str();
}

}  // namespace
}  // namespace hf_json

Expected<GgufVocab> vocab_from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  try {
    return hf_json::convert(tokenizer_json, tokenizer_config_json, "tokenizer.json", "tokenizer_config.json");
  } catch (const std::exception& e) {  // a bug here, not bad input; still a Status
    return Status::Error(std::string("tokenizer.json: ") + e.what());
  }
}

Expected<GgufVocab> load_hf_vocab(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::is_regular_file(dir, ec)) tj = fs::path(dir);  // the tokenizer.json itself
  if (!fs::exists(tj, ec)) return Status::Error(tj.string() + ": no such file");
  const fs::path base = tj.parent_path();
  auto text = hf_json::read_file(tj);
  if (!text.ok()) return text.status();
  std::string config;
  const fs::path cfg = base / "tokenizer_config.json";
  if (fs::exists(cfg, ec)) {
    auto c = hf_json::read_file(cfg);
    if (!c.ok()) return c.status();
    config = std::move(*c);
  }
  Expected<GgufVocab> v = Status::Error("");
  try {
    v = hf_json::convert(*text, config, tj.string(), cfg.string());
  } catch (const std::exception& e) {
    return Status::Error(tj.string() + ": " + e.what());
  }
  if (!v.ok()) return v;
  const fs::path jinja = base / "chat_template.jinja";
  if (v->chat_template.empty() && fs::exists(jinja, ec)) {
    auto t = hf_json::read_file(jinja);
    if (!t.ok()) return t.status();
    v->chat_template = std::move(*t);
  }
  return v;
}

}  // namespace longctx::tokenizer
