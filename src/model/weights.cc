#include "model/weights.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "model/model.h"
#include "quant/formats.h"

namespace longctx::model {

void TensorStore::index() {
  by_name_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
}

TensorStore TensorStore::from_gguf(std::shared_ptr<const io::GgufFile> f) {
  TensorStore s;
  for (const io::GgufTensorInfo& ti : f->tensors()) {
    StoredTensor t;
    t.name = ti.name;
    t.type = ti.type;
    t.type_name = quant::type_name(ti.type);
    t.shape.assign(ti.dims.rbegin(), ti.dims.rend());  // GGUF lists the fastest dimension first
    t.data = ti.data;
    t.n_bytes = ti.n_bytes;
    s.tensors_.push_back(std::move(t));
  }
  s.owner_ = std::move(f);
  s.index();
  return s;
}

TensorStore TensorStore::from_safetensors(std::shared_ptr<const io::SafetensorsModel> m) {
  TensorStore s;
  for (const io::SafetensorsTensor* st : m->tensors())
    s.tensors_.push_back(StoredTensor{st->name, st->type, st->dtype, st->shape, st->data, st->n_bytes});
  s.owner_ = std::move(m);
  s.index();
  return s;
}

const StoredTensor* TensorStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

WeightSource WeightMap::source_of(const std::string& param) const {
  if (source) return source(param);
  WeightSource s;
  s.names = {param};
  s.leading_rows = param == "position_embd.weight";
  return s;
}

bool split_block_name(const std::string& param, int* layer, std::string* rest) {
  if (param.rfind("blk.", 0) != 0) return false;
  const size_t dot = param.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot > 10) return false;
  int n = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (param[i] < '0' || param[i] > '9') return false;
    n = n * 10 + (param[i] - '0');
  }
  *layer = n;
  *rest = param.substr(dot + 1);
  return true;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

Expected<ResolvedSource> resolve_source(const TensorStore& store, const WeightSource& src, const std::string& param,
                                        const std::vector<int64_t>& shape) {
  ResolvedSource r;
  for (const auto& n : src.names)
    if ((r.tensor = store.find(n))) break;
  if (!r.tensor) {
    std::string names;
    for (const auto& n : src.names) names += (names.empty() ? "'" : " or '") + n + "'";
    return Status::Error("tensor " + names + " is missing" +
                         (src.names.size() == 1 && src.names[0] == param ? "" : " (for " + param + ")"));
  }
  const StoredTensor& t = *r.tensor;
  auto bad = [&](const std::string& why) {
    return Status::Error("tensor '" + t.name + "' " + shape_str(t.shape) + " (for " + param + " " + shape_str(shape) +
                         "): " + why);
  };
  if (t.shape.size() != shape.size() || shape.empty() || shape.size() > 2)
    return bad("a shape inconsistent with the config");
  r.stored_rows = t.shape[0];
  r.stored_cols = shape.size() == 2 ? t.shape[1] : 1;
  if (src.transpose) {
    if (shape.size() != 2) return bad("only a matrix can be transposed");
    std::swap(r.stored_rows, r.stored_cols);
  }
  const int64_t want_rows = shape[0], want_cols = shape.size() == 2 ? shape[1] : 1;
  r.row0 = src.row0;
  r.rows = src.rows >= 0 ? src.rows : src.leading_rows ? std::min(want_rows, r.stored_rows) : r.stored_rows;
  if (r.stored_cols != want_cols || r.rows != want_rows || r.row0 < 0 || r.row0 + r.rows > r.stored_rows ||
      (src.total_rows >= 0 && r.stored_rows != src.total_rows))
    return bad("a shape inconsistent with the config");
  if (src.rope_heads > 0 && (r.rows % src.rope_heads || (r.rows / src.rope_heads) % 2))
    return bad("rows do not split into heads of an even size");
  if (!quant::can_dequantize(t.type)) return bad("type " + t.type_name + " is not a weight type longctx reads");
  const int64_t rb = quant::row_bytes(t.type, t.shape.size() == 2 ? t.shape[1] : t.shape[0]);
  const uint64_t stored_n = static_cast<uint64_t>(t.shape[0]) * (t.shape.size() == 2 ? t.shape[1] : 1);
  const uint64_t expect = t.shape.size() == 2 ? static_cast<uint64_t>(rb) * t.shape[0] : static_cast<uint64_t>(rb);
  if (rb <= 0 || t.n_bytes != expect || stored_n == 0) return bad("its bytes do not match its shape and type");
  return r;
}

namespace {

// Rows [row0, row0 + rows) of the stored tensor (after the transpose) as fp32 [rows, cols].
Status read_source(const ResolvedSource& r, const WeightSource& src, float* dst) {
  const StoredTensor& t = *r.tensor;
  const int64_t cols = r.stored_cols;
  if (!src.transpose) {
    if (t.shape.size() == 1) {  // a vector (small): all of it, then the slice
      std::vector<float> v(static_cast<size_t>(r.stored_rows));
      LONGCTX_RETURN_IF_ERROR(quant::dequantize_row(t.type, t.data, v.data(), r.stored_rows));
      std::memcpy(dst, v.data() + r.row0, r.rows * sizeof(float));
      return Status::Ok();
    }
    // Rows of a matrix are contiguous in its type.
    const int64_t rb = quant::row_bytes(t.type, cols);
    return quant::dequantize_row(t.type, t.data + r.row0 * rb, dst, r.rows * cols);
  }
  // Stored [cols, stored_rows]: dst[i][j] = S[j][row0 + i].
  std::vector<float> s(static_cast<size_t>(r.stored_rows * cols));
  LONGCTX_RETURN_IF_ERROR(quant::dequantize_row(t.type, t.data, s.data(), static_cast<int64_t>(s.size())));
  constexpr int64_t kTile = 64;
  for (int64_t i0 = 0; i0 < r.rows; i0 += kTile)
    for (int64_t j0 = 0; j0 < cols; j0 += kTile)
      for (int64_t j = j0; j < std::min(cols, j0 + kTile); ++j)
        for (int64_t i = i0; i < std::min(r.rows, i0 + kTile); ++i)
          dst[i * cols + j] = s[j * r.stored_rows + r.row0 + i];
  return Status::Ok();
}

// Hugging Face's rotate-half layout per head (rows i and i + hd/2 rotate together) to adjacent
// pairs (rows 2i and 2i + 1), as llama.cpp's converter permutes Q and K.
void rope_pairs(float* w, int64_t rows, int64_t cols, int heads) {
  const int64_t hd = rows / heads, half = hd / 2;
  std::vector<float> tmp(static_cast<size_t>(hd * cols));
  for (int h = 0; h < heads; ++h) {
    float* head = w + h * hd * cols;
    std::memcpy(tmp.data(), head, tmp.size() * sizeof(float));
    for (int64_t i = 0; i < half; ++i) {
      std::memcpy(head + (2 * i) * cols, tmp.data() + i * cols, cols * sizeof(float));
      std::memcpy(head + (2 * i + 1) * cols, tmp.data() + (half + i) * cols, cols * sizeof(float));
    }
  }
}

}  // namespace

Status read_weights(const TensorStore& store, const WeightMap& map, Model& m, const std::vector<std::string>& skip) {
  std::unordered_set<std::string> used;
  for (const ParamTensor& p : m.layout().tensors()) {
    const WeightSource src = map.source_of(p.name);
    auto r = resolve_source(store, src, p.name, p.shape);
    if (!r.ok()) return r.status();
    used.insert(r->tensor->name);
    if (std::find(skip.begin(), skip.end(), p.name) != skip.end()) continue;
    float* dst = m.params() + p.offset;
    if (Status st = read_source(*r, src, dst); !st.ok()) return st.Wrap("tensor '" + r->tensor->name + "'");
    if (src.rope_heads > 0) rope_pairs(dst, r->rows, r->stored_cols, src.rope_heads);
  }
  for (const StoredTensor& t : store.tensors())
    if (!used.count(t.name) && !map.ignored(t.name)) return Status::Error("unexpected tensor '" + t.name + "'");
  return Status::Ok();
}

}  // namespace longctx::model
