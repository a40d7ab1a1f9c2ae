#include "model/trainable.h"

#include <algorithm>
#include <cstdio>

namespace longctx::model {
namespace {

// '*' matches any run of characters (none included); everything else itself.
bool glob_match(const std::string& pat, const std::string& s) {
  size_t p = 0, i = 0, star = std::string::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

bool parse_int(const std::string& s, int* out) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    return false;
  *out = std::stoi(s);
  return true;
}

// "4" or "0-3" into [a, b].
bool parse_range(const std::string& s, int* a, int* b) {
  const size_t dash = s.find('-');
  if (dash == std::string::npos) {
    if (!parse_int(s, a)) return false;
    *b = *a;
    return true;
  }
  return parse_int(s.substr(0, dash), a) && parse_int(s.substr(dash + 1), b) && *a <= *b;
}

bool is_embedding(const std::string& n) { return n == "token_embd.weight" || n == "position_embd.weight"; }

// The tensors `sel` selects, or an error naming `flag`.
Expected<std::vector<bool>> select(const ModelConfig& c, const ParamLayout& layout, const std::string& flag,
                                   const std::string& sel) {
  const auto& ts = layout.tensors();
  std::vector<bool> out(ts.size(), false);
  auto bad = [&](const std::string& m) { return Status::Error(flag + " " + sel + ": " + m); };
  std::vector<std::string> items;
  for (size_t start = 0;;) {
    const size_t comma = sel.find(',', start);
    items.push_back(sel.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const int n_layers = c.n_layers();
  bool in_blocks = false;
  auto add_layers = [&](int a, int b) -> Status {
    if (b >= n_layers)
      return bad("layer " + std::to_string(b) + " does not exist (the model has " + std::to_string(n_layers) +
                 " layers: 0-" + std::to_string(n_layers - 1) + ")");
    for (size_t i = 0; i < ts.size(); ++i)
      if (ts[i].layer >= a && ts[i].layer <= b) out[i] = true;
    return Status::Ok();
  };
  for (const std::string& item : items) {
    int a = 0, b = 0;
    if (item.empty()) return bad("an empty item");
    if (in_blocks && parse_range(item, &a, &b)) {
      LONGCTX_RETURN_IF_ERROR(add_layers(a, b));
      continue;
    }
    in_blocks = false;
    if (item == "all") {
      out.assign(ts.size(), true);
    } else if (item == "new") {
      if (c.added_layers.empty()) return bad("the model has no added layers (`longctx expand` adds them)");
      for (size_t i = 0; i < ts.size(); ++i)
        if (std::binary_search(c.added_layers.begin(), c.added_layers.end(), ts[i].layer)) out[i] = true;
    } else if (item == "embeddings") {
      for (size_t i = 0; i < ts.size(); ++i)
        if (is_embedding(ts[i].name)) out[i] = true;
    } else if (item == "head") {
      for (size_t i = 0; i < ts.size(); ++i)
        if (ts[i].layer < 0 && !is_embedding(ts[i].name)) out[i] = true;
    } else if (item == "norms") {
      for (size_t i = 0; i < ts.size(); ++i)
        if (ts[i].name.find("norm.") != std::string::npos) out[i] = true;
    } else if (item.rfind("blocks=", 0) == 0) {
      if (!parse_range(item.substr(7), &a, &b))
        return bad("'" + item + "' is not blocks=N or blocks=A-B (more numbers may follow: blocks=4,9,14)");
      LONGCTX_RETURN_IF_ERROR(add_layers(a, b));
      in_blocks = true;
    } else if (item.find('*') != std::string::npos || item.find('.') != std::string::npos) {
      bool any = false;
      for (size_t i = 0; i < ts.size(); ++i)
        if (glob_match(item, ts[i].name)) out[i] = any = true;
      if (!any) return bad("no tensor is named like '" + item + "'");
    } else {
      return bad("unknown selector '" + item +
                 "' (all, new, embeddings, head, norms, blocks=LIST, or a tensor name pattern like blk.*.attn_q.weight)");
    }
  }
  return out;
}

std::string millions(int64_t n) {
  char buf[32];
  if (n >= 100000)
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

}  // namespace

Expected<std::vector<bool>> resolve_trainable(const ModelConfig& c, const ParamLayout& layout,
                                              const std::string& train_only, const std::string& freeze) {
  const auto& ts = layout.tensors();
  std::vector<bool> on(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) on[i] = ts[i].trainable;  // the declarations' default
  if (!train_only.empty()) {
    auto s = select(c, layout, "--train-only", train_only);
    if (!s.ok()) return s.status();
    for (size_t i = 0; i < ts.size(); ++i) on[i] = on[i] && (*s)[i];
  }
  if (!freeze.empty()) {
    auto s = select(c, layout, "--freeze", freeze);
    if (!s.ok()) return s.status();
    for (size_t i = 0; i < ts.size(); ++i) on[i] = on[i] && !(*s)[i];
  }
  if (std::none_of(on.begin(), on.end(), [](bool b) { return b; }))
    return Status::Error("--train-only / --freeze leave nothing to train");
  return on;
}

std::string describe_trainable(const ParamLayout& layout) {
  const auto& ts = layout.tensors();
  int64_t total = 0, trained = 0, n_trained = 0;
  for (const auto& t : ts) {
    total += t.numel;
    if (t.trainable) trained += t.numel, ++n_trained;
  }
  char head[160];
  std::snprintf(head, sizeof head, "trainable: %lld of %zu tensors, %s of %s parameters (%.1f%%)%s\n",
                static_cast<long long>(n_trained), ts.size(), millions(trained).c_str(), millions(total).c_str(),
                total ? 100.0 * trained / total : 0.0, n_trained == static_cast<int64_t>(ts.size()) ? ": everything" : "");
  std::string out = head;
  if (n_trained == static_cast<int64_t>(ts.size())) return out;
  // Layers whose every tensor trains, as runs; other trained tensors by name.
  int max_layer = -1;
  for (const auto& t : ts) max_layer = std::max(max_layer, t.layer);
  std::vector<int> whole(max_layer + 1, 1);
  std::vector<int64_t> layer_params(max_layer + 1, 0), layer_tensors(max_layer + 1, 0);
  for (const auto& t : ts)
    if (t.layer >= 0) {
      whole[t.layer] &= t.trainable ? 1 : 0;
      layer_params[t.layer] += t.numel;
      ++layer_tensors[t.layer];
    }
  for (int l = 0; l <= max_layer;) {
    if (!whole[l] || layer_tensors[l] == 0) {
      ++l;
      continue;
    }
    int e = l;
    int64_t p = 0, n = 0;
    while (e <= max_layer && whole[e] && layer_tensors[e] > 0) p += layer_params[e], n += layer_tensors[e], ++e;
    out += "  blk." + std::to_string(l) + (e - 1 > l ? "-" + std::to_string(e - 1) : std::string()) + ": all " +
           std::to_string(n) + " tensors, " + millions(p) + "\n";
    l = e;
  }
  // The rest by name, the same name in several layers on one line: "blk.*.attn_q.weight.lora_a
  // [8x576] in layers 0-29 (30 tensors), 0.14M".
  struct Group {
    std::string shape;
    std::vector<int> layers;
    int64_t params = 0;
  };
  std::vector<std::pair<std::string, Group>> groups;
  for (const auto& t : ts) {
    if (!t.trainable || (t.layer >= 0 && whole[t.layer])) continue;
    std::string shape;
    for (size_t d = 0; d < t.shape.size(); ++d) shape += (d ? "x" : "") + std::to_string(t.shape[d]);
    std::string key = t.name;
    if (t.layer >= 0) key = "blk.*" + t.name.substr(t.name.find('.', 4));
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == key && g.second.shape == shape; });
    if (it == groups.end()) {
      groups.push_back({key, Group{shape, {}, 0}});
      it = groups.end() - 1;
    }
    if (t.layer >= 0) it->second.layers.push_back(t.layer);
    it->second.params += t.numel;
  }
  for (const auto& [key, g] : groups) {
    std::string where;
    if (g.layers.size() == 1) {
      out += "  blk." + std::to_string(g.layers[0]) + key.substr(5) + " [" + g.shape + "], " + millions(g.params) + "\n";
      continue;
    }
    for (size_t i = 0; i < g.layers.size();) {  // runs of consecutive layers
      size_t e = i;
      while (e + 1 < g.layers.size() && g.layers[e + 1] == g.layers[e] + 1) ++e;
      where += (where.empty() ? "" : ",") + std::to_string(g.layers[i]) +
               (e > i ? "-" + std::to_string(g.layers[e]) : std::string());
      i = e + 1;
    }
    out += "  " + key + " [" + g.shape + "]" +
           (g.layers.empty() ? "" : " in layers " + where + " (" + std::to_string(g.layers.size()) + " tensors)") + ", " +
           millions(g.params) + "\n";
  }
  return out;
}

}  // namespace longctx::model
