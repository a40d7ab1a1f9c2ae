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
// tau holds the routed fraction near its target rho: it is a running estimate of the scores'
// (1 - rho) quantile. Each training pass finds its batch's quantile q (between the k-th and
// (k+1)-th largest scores, k = round(rho n)) and writes kThresholdRate (tau - q) into tau's
// gradient slot, the gradient of the auxiliary loss kThresholdRate / 2 (tau - q)^2; the
// optimizer applies it as a running statistic (layers::TensorDecl::statistic: tau -= that,
// averaged over micro-batches and ranks), so tau is an exponential moving average of the batch
// quantiles with rate kThresholdRate, whatever the learning rate. The loss is not added to the
// reported loss. tau is a constant in the gate, so the task loss trains u alone. u is normalised
// so the scores keep a scale of about 1.
//
// Why not AdamW on a quantile (pinball) loss: AdamW moves tau by about the learning rate per
// step, and the router moves the scores faster than that (measured: a 1/16 target fell to 0-2%
// routed within 150 steps of the tiny preset as the router pushed its routed tokens' scores
// down).
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace longctx::layers {

// The moving average's rate per training step.
inline constexpr float kThresholdRate = 0.1f;

// The starting threshold for a target fraction: the (1 - fraction) quantile of a unit normal,
// the scores' distribution at initialisation (a random u over normed inputs).
float initial_threshold(double fraction);

// One pass's routing decisions.
struct Routing {
  std::vector<int64_t> rows;  // routed rows, ascending
  std::vector<float> gate;    // per routed row: sigmoid(z - tau)
  std::vector<float> z;       // per routed row: its score
  int64_t considered = 0;     // rows scored
  float quantile = 0;         // the scores' (1 - fraction) quantile (NaN: fewer than 2 rows)
  // route_topk: per sequence, the rows whose scores set its gates' midpoint m (the k-th and
  // (k + 1)-th highest; b_row -1 when every row is routed), and each routed row's sequence.
  struct Pivots {
    int64_t a_row = -1, b_row = -1;
    float a_z = 0, b_z = 0;
  };
  std::vector<Pivots> pivots;
  std::vector<int64_t> seq;
};

// Every row routed with gate 1 (a routed fraction of 1: no router).
void route_all(int64_t rows, Routing* r);

// Scores rows [0, rows) of h [rows, dim] and routes them (into r); with fraction > 0 (training
// passes), also the scores' (1 - fraction) batch quantile for the threshold's update. Deterministic and independent of the thread
// count.
void route(ThreadPool& pool, const float* h, int64_t rows, int64_t dim, const float* u, float tau, double fraction,
           Routing* r);

// The paper's encoder form: in each of `batch` sequences of seq_len rows, the k = round(fraction
// seq_len) (at least 1) rows of highest score are routed, gate_i = sigmoid(z_i - m) with m
// midway between the k-th and (k + 1)-th highest score of the sequence (m's gradient reaches
// those two rows). Routing depends on the whole sequence: bidirectional models only.
void route_topk(ThreadPool& pool, const float* h, int64_t batch, int64_t seq_len, int64_t dim, const float* u,
                double fraction, Routing* r);

// Backward of route() (or route_topk, dtau null) given dgate [r.rows.size()] = dL/dgate: dh[row] += dL/dh through the
// score (routed rows only), du += dL/du (null: frozen), and dtau += kThresholdRate (tau -
// r.quantile) (null: frozen).
void route_backward(const Routing& r, const float* h, int64_t dim, const float* u, float tau, const float* dgate,
                    float* dh, float* du, float* dtau);

}  // namespace longctx::layers
