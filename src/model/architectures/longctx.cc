// longctx's own checkpoints (general.architecture "longctx"): the config in longctx.* keys
// (model/checkpoint.h: read_config / write_config_keys) and every tensor under longctx's names.
// Saved by save_checkpoint, not by export.
#include "model/architectures/architecture.h"
#include "model/checkpoint.h"

namespace longctx::model::arch {

extern const Architecture kLongctxArchitecture;
const Architecture kLongctxArchitecture = {
    .name = "longctx",
    .hf_model_types = {},
    .gguf_config = read_config,
};

}  // namespace longctx::model::arch
