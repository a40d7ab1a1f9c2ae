// CoLT5's router (Ainslie et al. 2023, arXiv 2303.09752), made causal for a decoder.
//
// The paper scores token i as s_i = x_i . u and sends the top-k tokens of the whole sequence to
// the heavy branch: whether token t is routed then depends on tokens after t. Here the rule is a
// threshold on the token's own score (docs/COLT5.md says why):
//   z_i = h_i . u / |u|           (h: the block's normed input, u [model_dim] learned)
//   routed_i = z_i > tau          (tau [1] learned, see below)
//   gate_i = sigmoid(z_i - tau)   on routed rows (0 elsewhere), scaling the heavy branch's
//                                 output: the router's gradient comes from it, as in the paper.
// Token t's routing depends on token t's state only, which depends on tokens <= t; training,
// prefill and decoding route every token the same way.
//
// tau holds the routed fraction near its target rho: its gradient is that of the pinball
// (quantile) loss  kQuantileWeight * mean_i (z_i - tau) (1 - rho - [z_i < tau]),  whose minimum
// is the (1 - rho) quantile of the scores: d/dtau = kQuantileWeight (rho - routed_fraction), which
// moves tau up (under gradient descent) while too many tokens are routed. This auxiliary loss is not
// added to the reported loss; z is taken as a constant in it and tau as a constant in the gate,
// so it trains tau only and the gate trains u only. AdamW then moves tau by about the learning
// rate per step towards the quantile. u is normalised so the scores' scale (about 1) does not
// drift away from tau while u trains.
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace longctx::layers {

// Weight of the quantile loss's gradient on tau. AdamW normalises a tensor's gradient, so it
// only matters beside the other gradients in the global norm that clipping reads: small.
inline constexpr float kQuantileWeight = 0.01f;

// The starting threshold for a target fraction: the (1 - fraction) quantile of a unit normal,
// the scores' distribution at initialisation (a random u over normed inputs).
float initial_threshold(double fraction);

// One pass's routing decisions.
struct Routing {
  std::vector<int64_t> rows;  // routed rows, ascending
  std::vector<float> gate;    // per routed row: sigmoid(z - tau)
  std::vector<float> z;       // per routed row: its score
  int64_t considered = 0;     // rows scored
};

// Every row routed with gate 1 (a routed fraction of 1: no router).
void route_all(int64_t rows, Routing* r);

// Scores rows [0, rows) of h [rows, dim] and routes them (into r). Deterministic and
// independent of the thread count.
void route(ThreadPool& pool, const float* h, int64_t rows, int64_t dim, const float* u, float tau, Routing* r);

// Backward of route() given dgate [r.rows.size()] = dL/dgate: dh[row] += dL/dh through the
// score (routed rows only), du += dL/du (null: frozen), and dtau += the quantile gradient for
// target `fraction` (null: frozen).
void route_backward(const Routing& r, const float* h, int64_t dim, const float* u, const float* dgate,
                    double fraction, float* dh, float* du, float* dtau);

}  // namespace longctx::layers
