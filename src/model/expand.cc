#include "model/expand.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "io/gguf.h"
#include "model/checkpoint.h"
#include "model/pretrained.h"
#include "model/weights.h"
#include "quant/formats.h"

namespace longctx::model {

Expected<std::vector<ExpandedLayer>> expansion_layers(int n_layers, int add, int every) {
  if ((add != 0) == (every != 0)) return Status::Error("give one of --add N and --every K");
  if (add < 0 || every < 0) return Status::Error("--add and --every take a count >= 1");
  const std::string layers = std::to_string(n_layers) + " layers";
  if (add > 0) {
    if (n_layers % add != 0)
      return Status::Error("--add " + std::to_string(add) + " does not divide the model's " + layers +
                           " into equal groups (a copy goes after each group; try a divisor of " +
                           std::to_string(n_layers) + ")");
    every = n_layers / add;
  } else if (n_layers % every != 0) {
    return Status::Error("--every " + std::to_string(every) + " does not divide the model's " + layers);
  }
  std::vector<ExpandedLayer> out;
  for (int l = 0; l < n_layers; ++l) {
    out.push_back({l, false});
    if ((l + 1) % every == 0) out.push_back({l, true});
  }
  return out;
}

ModelConfig expanded_config(const ModelConfig& c, const std::vector<ExpandedLayer>& order) {
  ModelConfig e = c;
  e.layers.clear();
  e.added_layers.clear();
  for (size_t j = 0; j < order.size(); ++j) {
    e.layers.push_back(c.layers[order[j].source]);
    const bool was_added = std::binary_search(c.added_layers.begin(), c.added_layers.end(), order[j].source);
    if (order[j].added || was_added) e.added_layers.push_back(static_cast<int>(j));
  }
  return e;
}

Expected<std::unique_ptr<Model>> expand_model(const Model& m, const std::vector<ExpandedLayer>& order) {
  if (m.has_mapped_weights()) return Status::Error("expanding needs the fp32 weights");
  const ModelConfig cfg = expanded_config(m.config(), order);
  LONGCTX_RETURN_IF_ERROR(cfg.validate());
  auto out = std::make_unique<Model>(cfg);
  for (const ParamTensor& t : out->layout().tensors()) {
    std::string src = t.name;
    bool added = false;
    int layer = -1;
    std::string rest;
    if (split_block_name(t.name, &layer, &rest)) {
      src = "blk." + std::to_string(order[layer].source) + "." + rest;
      added = order[layer].added;
    }
    const ParamTensor* s = m.layout().find(src);
    if (!s || s->numel != t.numel) return Status::Error("expanding: no source for tensor '" + t.name + "'");
    float* dst = out->params() + t.offset;
    if (added && t.branch_out)
      std::fill(dst, dst + t.numel, 0.0f);
    else
      std::memcpy(dst, m.params() + s->offset, t.numel * sizeof(float));
  }
  return out;
}

namespace {

// The added copy of a stored tensor in `type` (zeros when `zero`): fp32 rows first, then
// quantized where the type is quantized and the rows hold whole blocks (else F32).
Status convert_tensor(const io::GgufTensorInfo& t, uint32_t type, bool zero, std::vector<uint8_t>* bytes,
                      uint32_t* out_type) {
  if (!quant::can_dequantize(t.type))
    return Status::Error("tensor '" + t.name + "' is of type " + quant::type_name(t.type) +
                         ", which longctx cannot convert");
  const int64_t row = t.dims.empty() ? 1 : t.dims[0];
  const int64_t rows = row > 0 ? static_cast<int64_t>(t.n_elements) / row : 0;
  std::vector<float> f(static_cast<size_t>(t.n_elements), 0.0f);
  if (!zero) {
    const int64_t src_row = quant::row_bytes(t.type, row);
    for (int64_t r = 0; r < rows; ++r)
      LONGCTX_RETURN_IF_ERROR(quant::dequantize_row(t.type, t.data + r * src_row, f.data() + r * row, row));
  }
  uint32_t to = type;
  if (t.dims.size() < 2 || (quant::is_quantized(to) && row % quant::block_size(to) != 0)) to = kF32;
  if (to == kF32) {
    bytes->resize(f.size() * sizeof(float));
    std::memcpy(bytes->data(), f.data(), bytes->size());
  } else {
    const int64_t out_row = quant::row_bytes(to, row);
    bytes->resize(static_cast<size_t>(out_row * rows));
    for (int64_t r = 0; r < rows; ++r)
      LONGCTX_RETURN_IF_ERROR(quant::quantize_row(to, f.data() + r * row, bytes->data() + r * out_row, row));
  }
  *out_type = to;
  return Status::Ok();
}

Expected<ExpandFileStats> expand_gguf(const io::GgufFile& f, const std::string& arch, const std::string& out,
                                      const ExpandFileOptions& opt) {
  auto cfg = config_of(f);
  if (!cfg.ok()) return cfg.status();
  const int n = cfg->n_layers();
  auto order = expansion_layers(n, opt.add, opt.every);
  if (!order.ok()) return order.status();
  const std::string count_key = arch + ".block_count";
  if (!f.find(count_key)) return Status::Error("the file has no '" + count_key + "'");
  for (const auto& kv : f.metadata())
    if (kv.key.rfind(arch + ".", 0) == 0 && kv.value.type() == io::GgufType::kArray &&
        kv.value.size() == static_cast<uint64_t>(n))
      return Status::Error("key '" + kv.key + "' holds one value per layer; expanding such files is not supported");

  // The stored tensors that end a residual branch: the sources of the layout's branch outputs.
  std::set<std::string> branch;  // names within a layer, e.g. "attn_output.weight"
  const WeightMap map = weights_of(arch, *cfg);
  const ParamLayout layout(*cfg);
  for (const ParamTensor& t : layout.tensors()) {
    if (!t.branch_out) continue;
    const WeightSource src = map.source_of(t.name);
    if (src.row0 != 0 || src.rows >= 0)
      return Status::Error("tensor '" + t.name + "' is stored inside a fused tensor; expanding such files is not supported");
    for (const std::string& s : src.names) {
      int layer = -1;
      std::string rest;
      if (f.find_tensor(s) && split_block_name(s, &layer, &rest)) branch.insert(rest);
    }
  }
  if (branch.empty()) return Status::Error("found no residual output projections to zero in the file's tensors");

  io::GgufWriter w;
  for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
  w.set_u32(count_key, static_cast<uint32_t>(order->size()));
  const ModelConfig ecfg = expanded_config(*cfg, *order);
  w.set_i32_array("longctx.expansion.added_blocks",
                  std::vector<int32_t>(ecfg.added_layers.begin(), ecfg.added_layers.end()));

  std::vector<std::vector<const io::GgufTensorInfo*>> by_layer(n);
  std::vector<const io::GgufTensorInfo*> others;
  for (const auto& t : f.tensors()) {
    int layer = -1;
    std::string rest;
    if (split_block_name(t.name, &layer, &rest) && layer >= 0 && layer < n)
      by_layer[layer].push_back(&t);
    else
      others.push_back(&t);
  }
  ExpandFileStats st;
  st.layers_before = n;
  st.layers_after = static_cast<int>(order->size());
  std::vector<std::vector<uint8_t>> owned;
  owned.reserve(f.tensors().size() * 2);
  for (const auto* t : others) LONGCTX_RETURN_IF_ERROR(w.add_tensor(t->name, t->dims, t->type, t->data, t->n_bytes));
  for (size_t j = 0; j < order->size(); ++j) {
    const ExpandedLayer& e = (*order)[j];
    for (const auto* t : by_layer[e.source]) {
      int layer = -1;
      std::string rest;
      split_block_name(t->name, &layer, &rest);
      const std::string name = "blk." + std::to_string(j) + "." + rest;
      if (!e.added) {
        LONGCTX_RETURN_IF_ERROR(w.add_tensor(name, t->dims, t->type, t->data, t->n_bytes));
        continue;
      }
      owned.emplace_back();
      uint32_t type = 0;
      LONGCTX_RETURN_IF_ERROR(convert_tensor(*t, opt.new_type, branch.count(rest) > 0, &owned.back(), &type));
      LONGCTX_RETURN_IF_ERROR(w.add_tensor(name, t->dims, type, owned.back().data(), owned.back().size()));
      st.params_added += static_cast<int64_t>(t->n_elements);
    }
  }
  LONGCTX_RETURN_IF_ERROR(w.write(out));
  return st;
}

}  // namespace

Expected<ExpandFileStats> expand_file(const std::string& in, const std::string& out, const ExpandFileOptions& opt) {
  auto f = io::GgufFile::open(in);
  if (!f.ok()) return f.status();
  auto arch = f->get_string("general.architecture");
  if (!arch.ok()) return arch.status().Wrap("'" + in + "'");
  if (*arch != "longctx") {
    auto st = expand_gguf(*f, *arch, out, opt);
    if (!st.ok()) return st.status().Wrap("expanding '" + in + "'");
    return st;
  }
  auto loaded = load_checkpoint(in);
  if (!loaded.ok()) return loaded.status();
  const Model& m = *loaded->model;
  auto order = expansion_layers(m.config().n_layers(), opt.add, opt.every);
  if (!order.ok()) return order.status();
  auto e = expand_model(m, *order);
  if (!e.ok()) return e.status();
  LONGCTX_RETURN_IF_ERROR(save_checkpoint(out, **e, loaded->tokenizer));
  ExpandFileStats st;
  st.layers_before = m.config().n_layers();
  st.layers_after = (*e)->config().n_layers();
  st.params_added = (*e)->n_params() - m.n_params();
  return st;
}

}  // namespace longctx::model
