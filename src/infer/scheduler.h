// Scheduler: continuous batching of many requests over one model (the server's engine).
//
// One loop thread. Every step it gathers the next token of every generating sequence and
// chunks of waiting prompts into one model::Model::forward_batch, so each weight matrix is read
// once per step for all decoding sequences; requests join at the next step and leave when done
// without stalling the others. A sequence's arithmetic does not depend on its neighbours
// (forward_batch), so an answer is the one the same request gets alone.
//
// The KV cache is one pool shared by all sequences (a long request may use most of it), with a
// kvcache::PrefixCache over it: full pages of computed tokens are kept and adopted by every later
// request that starts with the same tokens; a request whose prefix another sequence is computing
// right now waits for those pages instead of computing them again. Where the model's rows do not
// depend on the pass that computes them (the integer prefill), a request also takes the longest
// prefix a running sequence has computed at any token (a system prompt shorter than a page:
// the page it ends in is copied on write), and waits for one being computed; a finished
// request's rows past its last full page are kept too (PrefixCache::insert_partial), for the
// next request that starts the same way (the same system prompt, the next turn of a chat). When the pool runs out, kept
// pages no sequence uses go first (least recently used), then the youngest running request is
// preempted: its pages go back and it is recomputed from its tokens so far when there is room
// (its answer is unchanged).
//
// Requests talk to the loop through their Request object: the loop appends tokens and the
// final result; the client thread waits on it and may cancel (a disconnect) at any time, which
// frees the sequence at the next step.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "infer/sampler.h"
#include "kvcache/prefix_cache.h"
#include "model/model.h"
#include "tokenizer/bpe.h"

namespace longctx::infer {

struct GenOptions {
  SamplerOptions sampling;
  float frequency_penalty = 0, presence_penalty = 0;  // OpenAI's, over the tokens generated so far
  int64_t max_tokens = -1;                            // -1: until the context is full
  std::vector<std::string> stop;                      // strings that end the answer (not emitted)
  std::vector<int32_t> stop_ids;                      // tokens that end it (EOS always does)
  int logprobs = -1;                                  // -1: none; n >= 0: the token's and n alternatives
  Status validate() const;
};

struct TokenOut {
  int32_t id = 0;
  std::string text;  // the bytes this token adds to the answer now (complete UTF-8, stop strings held back)
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // with logprobs: the n most likely tokens
};

struct RequestResult {
  std::string finish_reason;  // stop, length, cancelled, error
  std::string error;          // with finish_reason error
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double ttft_s = 0, total_s = 0;
};

class Request {
 public:
  Request(std::vector<int32_t> prompt, GenOptions options);
  const std::vector<int32_t>& prompt() const { return prompt_; }
  const GenOptions& options() const { return options_; }
  uint64_t id() const { return id_; }

  // Client side: waits up to `timeout` for new tokens or the end; moves what arrived into `out`
  // and returns true once the request is done (result() then holds the outcome).
  bool wait(std::vector<TokenOut>& out, std::chrono::milliseconds timeout);
  const RequestResult& result() const { return result_; }  // after wait() returned true
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Loop side.
  void push(TokenOut t);
  void finish(RequestResult r);

 private:
  std::vector<int32_t> prompt_;
  GenOptions options_;
  uint64_t id_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TokenOut> pending_;
  bool done_ = false;
  RequestResult result_;
};

struct SchedulerOptions {
  int slots = 4;             // sequences running at once (-np)
  int64_t cache_tokens = 0;  // KV pool size in positions of one sequence (--ctx); 0: the model's context
  int64_t ubatch = 512;      // prompt rows per step
  uint32_t k_type = 0, v_type = 0;
  int64_t page_rows = kvcache::kDefaultPageRows;
  int max_queue = 64;        // waiting requests beyond which submit() refuses
  bool prefix_cache = true;
  bool log = true;           // one line per finished request on stderr
};

// Counters for /metrics (a snapshot).
struct SchedulerMetrics {
  int64_t requests_done = 0, requests_cancelled = 0, requests_rejected = 0, requests_error = 0;
  int64_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0, steps = 0, preemptions = 0;
  int64_t queue = 0, running = 0;
  int64_t kv_blocks = 0, kv_blocks_used = 0, prefix_entries = 0, prefix_blocks = 0, prefix_hit_pages = 0,
          prefix_evicted = 0;
  // Prefixes are shared in steps of this many tokens: 1 where rows do not depend on the pass
  // (share_tokens_), else the page size; and the tokens taken below a page (from running
  // sequences or kept partial pages).
  int64_t share_granularity = 0, shared_tokens = 0;
  double busy_s = 0;
};

class Scheduler {
 public:
  Scheduler(model::Model& model, const tokenizer::BpeTokenizer& tok, ThreadPool& pool, SchedulerOptions options);
  ~Scheduler();
  // Checks the memory plan, makes the KV pool and starts the loop.
  Status start();
  // Ends the loop; requests still running or waiting end with an error.
  void stop();
  // Queues a request; error when the queue is full ("the server is busy: ..."), after stop()
  // ("the server is shutting down") or when the prompt cannot fit the context.
  Status submit(const std::shared_ptr<Request>& r);
  SchedulerMetrics metrics() const;
  // Positions one request may hold (prompt + answer).
  int64_t context() const { return capacity_; }

 private:
  struct Seq;
  void loop();
  void admit();
  void step();
  void preempt_youngest();
  // Ends s's request (at_stop_string: the text ends before a stop string; otherwise what was
  // held back is sent first).
  void finish(Seq& s, const std::string& reason, const std::string& error = "", bool at_stop_string = false);
  // Samples s's next token from its logits and sends what it adds to the text.
  void emit(Seq& s, const float* logits);
  // Whether a running sequence is about to compute a prefix of `tokens` longer than the
  // `attached` positions it holds: full pages, or (share_tokens_) kMinSharedTokens more tokens.
  bool sibling_computing(const std::vector<int32_t>& tokens, int64_t attached) const;
  // share_tokens_: gives s the longest prefix a running sequence has computed, when it is at
  // least kMinSharedTokens longer than what s holds (a fork of that sequence's cache); returns
  // the positions s gained.
  int64_t share_running_prefix(Seq& s);
  // Copies the loop's state into m_ (mu_ held).
  void publish_locked();

  model::Model& model_;
  const tokenizer::BpeTokenizer& tok_;
  ThreadPool& pool_;
  SchedulerOptions opt_;
  int64_t capacity_ = 0;
  kvcache::KvCache root_;  // an empty sequence on the pool; new ones are its forks
  std::unique_ptr<kvcache::PrefixCache> prefix_;
  // Prefixes shared at any token, not only in whole pages: where the model's rows do not depend
  // on the pass computing them (Model::set_integer_prefill), a running sequence's computed rows
  // are what another request starting with the same tokens would compute alone.
  bool share_tokens_ = false;
  static constexpr int64_t kMinSharedTokens = 16;  // fewer are not worth a page copy or a wait
  Arena arena_;
  std::vector<float> logits_;
  std::vector<float> work_;  // one row of logits as the sampler edits it

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> incoming_;
  bool stopping_ = false;
  std::thread thread_;

  std::deque<std::unique_ptr<Seq>> waiting_;  // loop thread only
  std::vector<std::unique_ptr<Seq>> running_;
  uint64_t admitted_ = 0;
  SchedulerMetrics m_;  // under mu_
};

}  // namespace longctx::infer
