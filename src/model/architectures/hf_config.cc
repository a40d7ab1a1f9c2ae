#include "model/architectures/hf_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

namespace longctx::model::arch {

Expected<HfConfig> HfConfig::parse(const std::string& text, const std::string& path) {
  HfConfig c;
  c.path_ = path;
  c.j_ = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (c.j_.is_discarded()) return Status::Error(path + ": not valid JSON");
  if (!c.j_.is_object()) return Status::Error(path + ": not a JSON object");
  return c;
}

Expected<HfConfig> HfConfig::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (64u << 20)) return Status::Error(path + ": larger than 64 MiB");
  return parse(ss.str(), path);
}

Status HfConfig::error(const std::string& key, const std::string& problem) const {
  return Status::Error(path_ + ": '" + key + "' " + problem);
}

bool HfConfig::has(const std::string& key) const {
  auto it = j_.find(key);
  return it != j_.end() && !it->is_null();
}

Expected<int64_t> HfConfig::get_int(const std::string& key, const int64_t* fallback, int64_t lo, int64_t hi) const {
  if (!has(key)) {
    if (fallback) return *fallback;
    return error(key, "is missing");
  }
  const auto& v = j_.at(key);
  int64_t x = 0;
  if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(hi)) return error(key, "is out of range");
    x = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::fabs(v.get<double>()) < 1e15) {
    x = static_cast<int64_t>(v.get<double>());
  } else {
    return error(key, "is not an integer");
  }
  if (x < lo || x > hi) return error(key, "is " + std::to_string(x) + ", out of range");
  return x;
}

Expected<double> HfConfig::get_float(const std::string& key, const double* fallback) const {
  if (!has(key)) {
    if (fallback) return *fallback;
    return error(key, "is missing");
  }
  const auto& v = j_.at(key);
  if (!v.is_number()) return error(key, "is not a number");
  const double x = v.get<double>();
  if (!std::isfinite(x)) return error(key, "is not finite");
  return x;
}

Expected<bool> HfConfig::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = j_.at(key);
  if (!v.is_boolean()) return error(key, "is not true or false");
  return v.get<bool>();
}

Expected<std::string> HfConfig::get_string(const std::string& key, const std::string* fallback) const {
  if (!has(key)) {
    if (fallback) return *fallback;
    return error(key, "is missing");
  }
  const auto& v = j_.at(key);
  if (!v.is_string()) return error(key, "is not a string");
  return v.get<std::string>();
}

Expected<HfConfig> HfConfig::get_object(const std::string& key) const {
  if (!has(key)) return error(key, "is missing");
  const auto& v = j_.at(key);
  if (!v.is_object()) return error(key, "is not an object");
  HfConfig c;
  c.j_ = v;
  c.path_ = path_ + " (" + key + ")";
  return c;
}

bool HfConfig::array_has(const std::string& key, const std::string& value) const {
  auto it = j_.find(key);
  if (it == j_.end() || !it->is_array()) return false;
  for (const auto& e : *it)
    if (e.is_string() && e.get<std::string>() == value) return true;
  return false;
}

}  // namespace longctx::model::arch
