#include "io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/element_type.h"

namespace longctx::io {
namespace {

using json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
// A safetensors header is at most 3 levels deep (object, entry, shape); unknown keys may nest
// more. serde_json, which the reference reader uses, stops at 128.
constexpr size_t kMaxJsonDepth = 64;

struct DtypeInfo {
  const char* name;
  uint64_t size;
  uint32_t ggml;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", 8, kSafetensorsNoGgmlType},     {"F32", 4, kF32},
    {"F16", 2, kF16},                       {"BF16", 2, kBF16},
    {"I64", 8, kSafetensorsNoGgmlType},     {"I32", 4, kSafetensorsNoGgmlType},
    {"I16", 2, kSafetensorsNoGgmlType},     {"I8", 1, kSafetensorsNoGgmlType},
    {"U64", 8, kSafetensorsNoGgmlType},     {"U32", 4, kSafetensorsNoGgmlType},
    {"U16", 2, kSafetensorsNoGgmlType},     {"U8", 1, kSafetensorsNoGgmlType},
    {"BOOL", 1, kSafetensorsNoGgmlType},    {"F8_E4M3", 1, kSafetensorsNoGgmlType},
    {"F8_E5M2", 1, kSafetensorsNoGgmlType},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string u64s(uint64_t v) { return std::to_string(v); }

// Text from untrusted files, made one readable line: control and non-ASCII bytes (and, for
// quoting, \ and ') escaped, long text cut.
std::string printable(const std::string& s, size_t max_len, bool for_quotes) {
  std::string out;
  for (size_t k = 0; k < s.size() && k < max_len; ++k) {
    const unsigned char ch = static_cast<unsigned char>(s[k]);
    if (ch >= 0x20 && ch < 0x7f && !(for_quotes && (ch == '\\' || ch == '\''))) {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", ch);
      out += buf;
    }
  }
  if (s.size() > max_len) out += "...";
  return out;
}

// Names and keys, quoted: 'name'.
std::string quote_name(const std::string& s, size_t max_len = 128) { return "'" + printable(s, max_len, true) + "'"; }

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// "object", "number", ... for error messages.
std::string type_of(const json& j) { return j.type_name(); }

// A first, DOM-free pass over JSON text: syntax (with nlohmann's message and position), nesting
// depth, and duplicate keys in any object (nlohmann's DOM would silently keep the last one).
// Stops at the first problem.
class JsonChecker final : public nlohmann::json_sax<json> {
 public:
  const std::string& error() const { return error_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return enter();
  }
  bool key(string_t& k) override {
    if (keys_.empty()) return true;  // cannot happen: keys are only read inside objects
    if (!keys_.back().insert(k).second) {
      error_ = "duplicate key " + quote_name(k);
      return false;
    }
    return true;
  }
  bool end_object() override {
    if (!keys_.empty()) keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return enter(); }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // what() reads "[json.exception.parse_error.101] parse error at line 1, column 5: ...".
    std::string msg = ex.what();
    const size_t close = msg.find("] ");
    if (msg.rfind("[json.exception.", 0) == 0 && close != std::string::npos) msg.erase(0, close + 2);
    // The message quotes input bytes: escape them, and cut it.
    error_ = "not valid JSON (byte " + u64s(position) + "): " + printable(msg, 240, false);
    return false;
  }

 private:
  bool enter() {
    if (++depth_ > kMaxJsonDepth) {
      error_ = "JSON nested deeper than " + u64s(kMaxJsonDepth) + " levels";
      return false;
    }
    return true;
  }

  size_t depth_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;  // keys of each open object
  std::string error_;
};

// Parses JSON text into *out. Errors (no prefix): syntax, depth, duplicate keys. Never throws.
Status parse_json(const char* begin, const char* end, json* out) {
  // nlohmann's lexer takes a NUL byte for the end of the input, so "{}\0junk" would pass. JSON
  // text never holds one (control characters in strings must be escaped).
  if (const void* nul = std::memchr(begin, 0, static_cast<size_t>(end - begin))) {
    const uint64_t at = static_cast<uint64_t>(static_cast<const char*>(nul) - begin);
    return Status::Error("not valid JSON: NUL byte at byte " + u64s(at));
  }
  try {
    JsonChecker checker;
    if (!json::sax_parse(begin, end, &checker) || !checker.error().empty()) {
      return Status::Error(checker.error().empty() ? std::string("not valid JSON") : checker.error());
    }
    *out = json::parse(begin, end, nullptr, /*allow_exceptions=*/false);
    if (out->is_discarded()) return Status::Error("not valid JSON");
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Error(std::string("cannot parse JSON: ") + e.what());
  }
}

// A JSON integer in [0, 2^64): true and *out set; false for anything else (*negative set for a
// negative integer, so the caller can say so).
bool get_uint(const json& j, uint64_t* out, bool* negative) {
  *negative = false;
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) {
      *negative = true;
      return false;
    }
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int k = 0; k < 8; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

// Fills one tensor's description from its header entry; checks everything that concerns the entry
// alone (the tiling of the buffer is checked once all are read). Errors name the tensor.
Status parse_entry(const std::string& name, const json& entry, uint64_t buffer_size, SafetensorsTensor* t) {
  const std::string where = "tensor " + quote_name(name);
  if (!entry.is_object()) return Status::Error(where + " is a JSON " + type_of(entry) + ", expected an object");
  t->name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return Status::Error(where + ": missing \"dtype\"");
  if (!dtype_it->is_string()) {
    return Status::Error(where + ": \"dtype\" is a JSON " + type_of(*dtype_it) + ", expected a string");
  }
  t->dtype = dtype_it->get_ref<const std::string&>();
  const DtypeInfo* dtype = find_dtype(t->dtype);
  if (dtype == nullptr) return Status::Error(where + ": unknown dtype " + quote_name(t->dtype));
  t->type = dtype->ggml;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return Status::Error(where + ": missing \"shape\"");
  if (!shape_it->is_array()) {
    return Status::Error(where + ": \"shape\" is a JSON " + type_of(*shape_it) + ", expected an array of integers");
  }
  uint64_t n = 1;
  t->shape.reserve(shape_it->size());
  for (size_t k = 0; k < shape_it->size(); ++k) {
    const json& d = (*shape_it)[k];
    uint64_t v = 0;
    bool negative = false;
    if (!get_uint(d, &v, &negative)) {
      if (negative) {
        return Status::Error(where + ": negative dimension shape[" + u64s(k) + "] = " +
                             std::to_string(d.get<int64_t>()));
      }
      return Status::Error(where + ": shape[" + u64s(k) + "] is a JSON " + type_of(d) + ", expected an integer");
    }
    if (v > kSafetensorsMaxElements) {
      return Status::Error(where + ": dimension shape[" + u64s(k) + "] = " + u64s(v) + " is too large (limit 2^62)");
    }
    t->shape.push_back(static_cast<int64_t>(v));
    if (__builtin_mul_overflow(n, v, &n) || n > kSafetensorsMaxElements) {
      return Status::Error(where + ": element count overflows (limit 2^62) at shape[" + u64s(k) + "] of " +
                           shape_string(t->shape));
    }
  }
  t->n_elements = n;
  if (__builtin_mul_overflow(n, dtype->size, &t->n_bytes)) {
    return Status::Error(where + ": byte size of shape " + shape_string(t->shape) + " overflows");
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) return Status::Error(where + ": missing \"data_offsets\"");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return Status::Error(where + ": \"data_offsets\" must be an array of two integers [begin, end]");
  }
  uint64_t off[2];
  for (size_t k = 0; k < 2; ++k) {
    bool negative = false;
    if (!get_uint((*offsets_it)[k], &off[k], &negative)) {
      return Status::Error(where + ": data_offsets[" + u64s(k) + "] is " +
                           (negative ? std::string("negative") : "a JSON " + type_of((*offsets_it)[k])) +
                           ", expected an integer >= 0");
    }
  }
  const std::string offsets = "data_offsets [" + u64s(off[0]) + ", " + u64s(off[1]) + "]";
  if (off[0] > off[1]) return Status::Error(where + ": " + offsets + " has begin > end");
  if (off[1] > buffer_size) {
    return Status::Error(where + ": " + offsets + " ends past the end of the byte buffer (" + u64s(buffer_size) +
                         " bytes)");
  }
  if (off[1] - off[0] != t->n_bytes) {
    return Status::Error(where + ": size mismatch: " + offsets + " hold " + u64s(off[1] - off[0]) +
                         " bytes, but shape " + shape_string(t->shape) + " of " + t->dtype + " needs " +
                         u64s(t->n_bytes));
  }
  t->offset = off[0];
  return Status::Ok();
}

bool plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

// Reads a `model.safetensors.index.json`: weight_map into shard file name -> tensor names.
// Errors have no prefix.
Status read_index(const std::string& text, std::map<std::string, std::vector<std::string>>* shards) {
  json root;
  LONGCTX_RETURN_IF_ERROR(parse_json(text.data(), text.data() + text.size(), &root));
  if (!root.is_object()) return Status::Error("index is a JSON " + type_of(root) + ", expected an object");
  auto wm = root.find("weight_map");
  if (wm == root.end()) return Status::Error("index has no \"weight_map\"");
  if (!wm->is_object()) return Status::Error("\"weight_map\" is a JSON " + type_of(*wm) + ", expected an object");
  if (wm->empty()) return Status::Error("\"weight_map\" lists no tensors");
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string where = "weight_map: tensor " + quote_name(it.key());
    if (!it->is_string()) {
      return Status::Error(where + ": shard is a JSON " + type_of(*it) + ", expected a file name");
    }
    const std::string& shard = it->get_ref<const std::string&>();
    if (!plain_file_name(shard)) {
      return Status::Error(where + ": shard " + quote_name(shard) + " is not a plain file name");
    }
    (*shards)[shard].push_back(it.key());
  }
  return Status::Ok();
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

uint64_t safetensors_dtype_size(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  return d ? d->size : 0;
}

uint32_t safetensors_ggml_type(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  return d ? d->ggml : kSafetensorsNoGgmlType;
}

// ---- SafetensorsFile ----

Expected<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  Expected<MappedFile> mapped = MappedFile::open(path);
  if (!mapped.ok()) return mapped.status().Wrap("safetensors");
  SafetensorsFile f;
  f.path_ = path;
  f.mapped_ = std::move(mapped).value();
  f.bytes_ = f.mapped_.data();
  f.size_ = f.mapped_.size();
  Status st = f.parse();
  if (!st.ok()) return st.Wrap("safetensors: " + path);
  return f;
}

Expected<SafetensorsFile> SafetensorsFile::from_bytes(std::vector<uint8_t> bytes) {
  SafetensorsFile f;
  f.owned_ = std::move(bytes);
  f.bytes_ = f.owned_.data();
  f.size_ = f.owned_.size();
  Status st = f.parse();
  if (!st.ok()) return st.Wrap("safetensors");
  return f;
}

Status SafetensorsFile::parse() {
  if (size_ < 8) {
    return Status::Error("file is " + u64s(size_) + " bytes, too short for the 8-byte header length");
  }
  const uint64_t n = load_le64(bytes_);
  if (n == 0) return Status::Error("header length is 0 (expected a JSON object)");
  if (n > kSafetensorsMaxHeaderBytes) {
    return Status::Error("header length " + u64s(n) + " exceeds the limit of " + u64s(kSafetensorsMaxHeaderBytes) +
                         " bytes (100 MiB)");
  }
  if (n > size_ - 8) {
    return Status::Error("header length " + u64s(n) + " runs past the end of the file (" + u64s(size_ - 8) +
                         " bytes after the length)");
  }
  header_bytes_ = n;
  const char* header = reinterpret_cast<const char*>(bytes_ + 8);
  const uint64_t buffer_size = size_ - 8 - n;
  const uint8_t* buffer = bytes_ + 8 + n;

  try {
    json root;
    Status st = parse_json(header, header + n, &root);
    if (!st.ok()) return st.Wrap("header");
    if (!root.is_object()) return Status::Error("header is a JSON " + type_of(root) + ", expected an object");

    tensors_.reserve(root.size());
    for (auto it = root.begin(); it != root.end(); ++it) {
      const std::string& key = it.key();
      const json& value = it.value();
      if (key == "__metadata__") {
        if (value.is_null()) continue;  // serde's Option: null is no metadata
        if (!value.is_object()) {
          return Status::Error("__metadata__ is a JSON " + type_of(value) + ", expected an object of strings");
        }
        for (auto m = value.begin(); m != value.end(); ++m) {
          if (!m->is_string()) {
            return Status::Error("__metadata__ key " + quote_name(m.key()) + " is a JSON " + type_of(*m) +
                                 ", expected a string");
          }
          metadata_.emplace(m.key(), m->get_ref<const std::string&>());
        }
        continue;
      }
      SafetensorsTensor t;
      LONGCTX_RETURN_IF_ERROR(parse_entry(key, value, buffer_size, &t));
      tensors_.push_back(std::move(t));
    }
  } catch (const std::exception& e) {
    return Status::Error(std::string("cannot read the header: ") + e.what());
  }

  // The tensors must tile the byte buffer: in offset order, each starts where the previous ended.
  std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    if (a.offset != b.offset) return a.offset < b.offset;
    if (a.n_bytes != b.n_bytes) return a.n_bytes < b.n_bytes;
    return a.name < b.name;
  });
  uint64_t cursor = 0;
  const SafetensorsTensor* prev = nullptr;
  for (const SafetensorsTensor& t : tensors_) {
    if (t.offset < cursor) {
      return Status::Error("tensor " + quote_name(t.name) + " bytes [" + u64s(t.offset) + ", " +
                           u64s(t.offset + t.n_bytes) + ") overlap tensor " +
                           quote_name(prev ? prev->name : std::string()) + ", which ends at " + u64s(cursor));
    }
    if (t.offset > cursor) {
      return Status::Error("hole in the byte buffer: bytes [" + u64s(cursor) + ", " + u64s(t.offset) +
                           ") before tensor " + quote_name(t.name) + " belong to no tensor");
    }
    cursor = t.offset + t.n_bytes;  // <= buffer_size: checked per entry
    prev = &t;
  }
  if (cursor != buffer_size) {
    return Status::Error("byte buffer has " + u64s(buffer_size - cursor) + " trailing bytes after the last tensor (" +
                         "tensors end at " + u64s(cursor) + ", the buffer is " + u64s(buffer_size) + " bytes)");
  }

  index_.reserve(tensors_.size());
  for (size_t k = 0; k < tensors_.size(); ++k) {
    tensors_[k].data = buffer + tensors_[k].offset;
    index_.emplace(tensors_[k].name, k);  // names are unique: duplicate JSON keys were rejected
  }
  return Status::Ok();
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---- SafetensorsModel ----

Expected<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
  namespace fs = std::filesystem;
  SafetensorsModel m;
  m.path_ = path;
  std::string file = path;
  bool is_index = false;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    std::error_code ec_single, ec_index;
    if (fs::exists(dir / kSingleName, ec_single)) {
      file = (dir / kSingleName).string();
    } else if (fs::exists(dir / kIndexName, ec_index)) {
      file = (dir / kIndexName).string();
      is_index = true;
    } else {
      return Status::Error("safetensors: " + path + ": directory holds neither " + kSingleName + " nor " +
                           kIndexName);
    }
  } else {
    is_index = ends_with(path, ".json");
  }

  if (!is_index) {
    Expected<SafetensorsFile> f = SafetensorsFile::open(file);
    if (!f.ok()) return f.status();
    m.files_.push_back(std::move(f).value());
    LONGCTX_RETURN_IF_ERROR(m.index_tensors());
    return m;
  }

  Expected<std::string> text = read_file(file);
  if (!text.ok()) return text.status().Wrap("safetensors");
  std::map<std::string, std::vector<std::string>> shards;  // sorted by file name
  Status st = read_index(*text, &shards);
  if (!st.ok()) return st.Wrap("safetensors: " + file);

  const fs::path dir = fs::path(file).parent_path();
  m.files_.reserve(shards.size());
  for (const auto& [shard, names] : shards) {
    Expected<SafetensorsFile> f = SafetensorsFile::open((dir / shard).string());
    if (!f.ok()) return f.status();
    for (const std::string& name : names) {
      if (f->find(name) == nullptr) {
        return Status::Error("safetensors: " + file + ": tensor " + quote_name(name) + " is listed in shard " +
                             quote_name(shard) + ", which does not hold it");
      }
    }
    m.files_.push_back(std::move(f).value());
  }
  LONGCTX_RETURN_IF_ERROR(m.index_tensors());
  return m;
}

Status SafetensorsModel::index_tensors() {
  for (size_t fi = 0; fi < files_.size(); ++fi) {
    const std::vector<SafetensorsTensor>& ts = files_[fi].tensors();
    for (size_t ti = 0; ti < ts.size(); ++ti) {
      auto [it, inserted] = index_.emplace(ts[ti].name, std::make_pair(fi, ti));
      if (!inserted) {
        return Status::Error("safetensors: " + files_[fi].path() + ": tensor " + quote_name(ts[ti].name) +
                             " is also in " + files_[it->second.first].path());
      }
    }
  }
  return Status::Ok();
}

const SafetensorsTensor* SafetensorsModel::find(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  return &files_[it->second.first].tensors()[it->second.second];
}

std::vector<const SafetensorsTensor*> SafetensorsModel::tensors() const {
  std::vector<const SafetensorsTensor*> out;
  out.reserve(index_.size());
  for (const SafetensorsFile& f : files_) {
    for (const SafetensorsTensor& t : f.tensors()) out.push_back(&t);
  }
  return out;
}

}  // namespace longctx::io
