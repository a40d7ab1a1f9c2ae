// A Hugging Face `config.json`, read with typed getters whose errors name the file and the key.
// Absent keys and JSON null both count as "not set" (transformers writes null for defaults).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"

namespace longctx::model::arch {

class HfConfig {
 public:
  // Parses `text` (the contents of `path`, which only names the file in errors).
  static Expected<HfConfig> parse(const std::string& text, const std::string& path);
  static Expected<HfConfig> load(const std::string& path);

  bool has(const std::string& key) const;  // present and not null
  // An integer in [lo, hi]; `fallback` when not set, or an error when fallback is nullptr.
  Expected<int64_t> get_int(const std::string& key, const int64_t* fallback = nullptr, int64_t lo = 1,
                            int64_t hi = int64_t(1) << 31) const;
  Expected<double> get_float(const std::string& key, const double* fallback = nullptr) const;
  Expected<bool> get_bool(const std::string& key, bool fallback) const;
  Expected<std::string> get_string(const std::string& key, const std::string* fallback = nullptr) const;
  // A nested object (rope_scaling), as its own HfConfig; the key must be set.
  Expected<HfConfig> get_object(const std::string& key) const;
  // Whether the array `key` (e.g. "architectures") holds the string `value`.
  bool array_has(const std::string& key, const std::string& value) const;

  const std::string& path() const { return path_; }
  Status error(const std::string& key, const std::string& problem) const;

 private:
  nlohmann::json j_;
  std::string path_;
};

}  // namespace longctx::model::arch
