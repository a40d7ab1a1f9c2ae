#include "model/random_model.h"

#include <cctype>
#include <map>
#include <vector>

#include "core/rng.h"
#include "quant/formats.h"

namespace longctx::model {

Expected<RandomModelSpec> parse_random_model(const std::string& spec) {
  auto bad = [&](const std::string& why) { return Status::Error("random model '" + spec + "': " + why); };
  const size_t colon = spec.find(':');
  const std::string arch = spec.substr(0, colon);
  if (arch != "llama") return bad("architecture '" + arch + "' (expected llama:KEY=VALUE,...)");
  std::map<std::string, int64_t> v = {{"layers", 30}, {"model_dim", 576}, {"heads", 9}, {"kv_heads", 3},
                                      {"ff_dim", 1536}, {"vocab", 49152}, {"head_dim", 0}, {"window", 0},
                                      {"ctx", 8192}, {"seed", 1}};
  std::string type = "q8_0";
  std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  size_t pos = 0;
  while (pos < rest.size()) {
    size_t comma = rest.find(',', pos);
    if (comma == std::string::npos) comma = rest.size();
    const std::string item = rest.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return bad("'" + item + "' is not KEY=VALUE");
    const std::string key = item.substr(0, eq), val = item.substr(eq + 1);
    if (key == "type") {
      type = val;
      continue;
    }
    if (!v.count(key)) return bad("unknown key '" + key + "' (layers, model_dim, heads, kv_heads, ff_dim, vocab, "
                                  "head_dim, window, ctx, type, seed)");
    if (val.empty() || val.size() > 9) return bad("'" + key + "' needs a number of at most 9 digits");
    for (char ch : val)
      if (!std::isdigit(static_cast<unsigned char>(ch))) return bad("'" + key + "=" + val + "' is not a number");
    v[key] = std::stoll(val);
  }
  RandomModelSpec out;
  out.seed = static_cast<uint64_t>(v["seed"]);
  const std::map<std::string, uint32_t> types = {
      {"q8_0", kQ8_0}, {"q4_0", kQ4_0}, {"q4_1", kQ4_1}, {"f16", kF16}, {"f32", kF32}};
  auto t = types.find(type);
  if (t == types.end()) return bad("type '" + type + "' (expected q8_0, q4_0, q4_1, f16 or f32)");
  out.type = t->second;
  for (const char* k : {"layers", "model_dim", "heads", "kv_heads", "ff_dim", "vocab", "ctx"})
    if (v[k] < 1) return bad(std::string("'") + k + "' must be >= 1");
  if (v["heads"] > 0 && v["head_dim"] == 0) v["head_dim"] = v["model_dim"] / v["heads"];
  ModelConfig& c = out.config;
  c.vocab_size = static_cast<int>(v["vocab"]);
  c.model_dim = static_cast<int>(v["model_dim"]);
  c.ctx = static_cast<int>(v["ctx"]);
  c.norm = NormType::kRmsNorm;
  c.mlp = MlpType::kSwiglu;
  c.bias = false;
  c.tied_embeddings = true;
  c.pos = PosType::kRope;
  c.rope_theta = 10000.0f;
  LayerConfig l{static_cast<int>(v["heads"]), static_cast<int>(v["kv_heads"]), static_cast<int>(v["head_dim"]),
                static_cast<int>(v["ff_dim"])};
  if (v["window"] > 0) l.pattern = attention::SlidingWindow{v["window"]};
  if (v["layers"] > 1024) return bad("'layers' must be <= 1024");
  c.set_uniform_layers(static_cast<int>(v["layers"]), l);
  if (Status st = c.validate(); !st.ok()) return bad(st.message());
  if (quant::is_quantized(out.type))
    for (const MatrixSlot& s : Model::matrix_slots(c))
      if (quant::row_bytes(out.type, s.cols) < 0)
        return bad("type " + quant::type_name(out.type) + " needs every matrix's columns to be a multiple of " +
                   std::to_string(quant::block_size(out.type)) + " (" + s.name + " has " + std::to_string(s.cols) + ")");
  return out;
}

Expected<std::unique_ptr<Model>> make_random_model(const RandomModelSpec& spec) {
  const ModelConfig& c = spec.config;
  const ParamLayout layout(c);
  Rng rng(spec.seed);
  io::GgufWriter w;
  w.set_string("general.architecture", "random");
  std::vector<std::vector<uint8_t>> bytes;  // kept until to_bytes() has copied them
  bytes.reserve(layout.tensors().size());
  std::vector<float> vals;
  for (const ParamTensor& t : layout.tensors()) {
    vals.resize(static_cast<size_t>(t.numel));
    const bool ones = t.init == layers::Init::kOnes, value = t.init == layers::Init::kValue;
    for (auto& x : vals) x = ones ? 1.0f : value ? t.init_value : static_cast<float>(rng.normal()) * 0.02f;
    const uint32_t type = t.shape.size() == 2 ? spec.type : kF32;
    const int64_t row = t.shape.back(), rows = t.numel / row, rb = quant::row_bytes(type, row);
    bytes.emplace_back(static_cast<size_t>(rb * rows));
    LONGCTX_RETURN_IF_ERROR(quant::quantize_row(type, vals.data(), bytes.back().data(), t.numel));
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, type, bytes.back().data(), bytes.back().size()));
  }
  auto file_bytes = w.to_bytes();
  if (!file_bytes.ok()) return file_bytes.status();
  bytes.clear();
  bytes.shrink_to_fit();
  auto f = io::GgufFile::from_bytes(std::move(*file_bytes));
  if (!f.ok()) return f.status();
  const TensorStore store = TensorStore::from_gguf(std::make_shared<const io::GgufFile>(std::move(*f)));
  auto m = std::make_unique<Model>(c);
  const WeightMap identity;
  const std::vector<std::string> mapped = m->map_matrices(store, identity);
  LONGCTX_RETURN_IF_ERROR(read_weights(store, identity, *m, mapped));
  return m;
}

}  // namespace longctx::model
