// Where a model's weights come from. A TensorStore is the tensors of a model file (GGUF, or
// safetensors in one file or shards) under their stored names, with what keeps their bytes
// mapped. A WeightMap says, for each longctx parameter (params.h's llama-style names), which
// stored tensor holds it and how: as it is, transposed (Hugging Face GPT-2's Conv1D matrices are
// stored [in, out]), as a block of rows of a fused tensor (GPT-2's QKV), or with the rows of
// each head reordered from Hugging Face's rotate-half RoPE layout to the adjacent pairs longctx
// rotates. Architectures (model/architectures/) provide the maps; read_weights and
// Model::map_matrices apply them.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "io/safetensors.h"

namespace longctx::model {

class Model;

// One stored tensor: ggml type id (io::kSafetensorsNoGgmlType for a dtype longctx does not
// read), shape in PyTorch order (slowest dimension first), and its bytes.
struct StoredTensor {
  std::string name;
  uint32_t type = 0;
  std::string type_name;  // for messages: "Q4_1", "BF16", "I64", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;
};

class TensorStore {
 public:
  static TensorStore from_gguf(std::shared_ptr<const io::GgufFile> f);
  static TensorStore from_safetensors(std::shared_ptr<const io::SafetensorsModel> m);

  const StoredTensor* find(const std::string& name) const;
  const std::vector<StoredTensor>& tensors() const { return tensors_; }
  // Keeps the stored bytes valid; a model that reads tensors in place holds it.
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  void index();
  std::vector<StoredTensor> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::shared_ptr<const void> owner_;
};

// How one parameter is read from the store. For a matrix, the stored tensor is taken as
// [rows, cols] (PyTorch order), transposed first when `transpose`; then rows [row0, row0 + rows)
// are the parameter (rows < 0: all), and the stored tensor must have exactly `total_rows` rows
// after the transpose when that is >= 0 (a fused tensor split into parts). For a vector, the
// same with elements. rope_heads > 0: the rows form that many heads, each stored as
// [first halves of the rotated pairs; second halves], and are reordered to pairs.
struct WeightSource {
  std::vector<std::string> names;  // the first of these that the store holds
  bool transpose = false;
  int64_t row0 = 0, rows = -1, total_rows = -1;
  int rope_heads = 0;
  // The parameter is the first rows of a longer stored table (learned positions run at a
  // context shorter than the one trained): rows < 0 then means as many as the parameter has.
  bool leading_rows = false;
  bool plain() const { return !transpose && rope_heads == 0; }  // readable in place
};

struct WeightMap {
  // The source of a parameter; identity (the same name, as it is) when unset.
  std::function<WeightSource(const std::string& param)> source;
  // Stored tensors that are not weights and are skipped (Hugging Face's non-persistent buffers
  // saved by older versions, a tied output saved anyway); everything else must be used.
  std::function<bool(const std::string& stored)> ignore;

  WeightSource source_of(const std::string& param) const;
  bool ignored(const std::string& stored) const { return ignore && ignore(stored); }
};

// "blk.12.attn_q.weight" -> 12, "attn_q.weight"; false for names outside the blocks.
bool split_block_name(const std::string& param, int* layer, std::string* rest);

// A parameter of `shape` ([rows, cols] or [n]) located in the store: the stored tensor, its
// [rows, cols] after the transpose (a vector is [n, 1]), and the block of rows taken. Errors name
// the parameter and the stored tensor: missing, another shape, too few rows.
struct ResolvedSource {
  const StoredTensor* tensor = nullptr;
  int64_t stored_rows = 0, stored_cols = 0;
  int64_t row0 = 0, rows = 0;
};
Expected<ResolvedSource> resolve_source(const TensorStore& store, const WeightSource& src, const std::string& param,
                                        const std::vector<int64_t>& shape);

// Fills every parameter of m's layout from the store, converting to fp32, except those named in
// `skip` (read in place by Model::map_matrices; their sources are still checked). Errors: a
// tensor missing, of a shape other than the config implies, of a type longctx cannot read, or a
// stored tensor no parameter uses.
Status read_weights(const TensorStore& store, const WeightMap& map, Model& m, const std::vector<std::string>& skip = {});

}  // namespace longctx::model
