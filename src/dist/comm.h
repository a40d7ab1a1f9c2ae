// Training past one process: the job's process group over MPI (rank, size, reductions) and
// the data-parallel gradient all-reduce, run in buckets on a communication thread while the
// backward pass is still computing the gradients of the layers below.
//
// MPI is the transport and the launcher is the user's (mpirun, srun, a Kubernetes MPI
// operator): longctx starts MPI only when a launcher started it (its environment says so) and
// the build has MPI (LONGCTX_HAVE_MPI; CMake's LONGCTX_MPI, on where OpenMPI is found). Run
// without a launcher, the same binary is one process of one rank and calls no MPI at all.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "core/status.h"

namespace longctx::dist {

// Whether this process was started by an MPI launcher (OpenMPI's, PMI or PMIx environments).
bool launched_by_mpi();
// Whether this build can join an MPI job.
bool built_with_mpi();

class Group {
 public:
  // The job's group, made on the first call: MPI's world when launched by an MPI launcher,
  // one process otherwise. Errors when a launcher started this process but the build has no
  // MPI, or when MPI cannot give the thread support the gradient thread needs.
  static Expected<Group*> world();
  // One process, no MPI (tests).
  static Group& single();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  bool root() const { return rank_ == 0; }

  // In place, over every rank; identical results on every rank. With one rank: nothing.
  // Not while a GradReducer of this group has buckets in flight.
  void sum(float* x, int64_t n);
  void sum(double* x, int64_t n);
  void barrier();
  // Sends `bytes` to rank dest and receives as many from rank src (a ring step). Any thread,
  // while no other thread of this process calls the group.
  void sendrecv(const void* send, void* recv, int64_t bytes, int dest, int src);
  // Ends the whole job (MPI_Abort with one rank's error); exits with `code` when not distributed.
  [[noreturn]] void abort(int code);
  // MPI_Finalize (at exit; idempotent).
  void finalize();

 private:
  Group() = default;
  int rank_ = 0, size_ = 1;
  bool mpi_ = false, finalized_ = false;
};

// Sums the flat gradient buffer over the group's ranks during backward. The backward pass
// finishes gradients from the top of the model down, so what is final is always a suffix of
// the buffer: `ready_from(offset)` says [offset, total) is final, and whenever the final but
// unsent part reaches the bucket size it goes to the communication thread, which all-reduces
// it while compute goes on. `finish()` sends the rest and waits: then every rank holds the
// same summed gradients. Buckets are the same on every rank (the same offsets in the same
// order), as MPI's collectives require.
class GradReducer {
 public:
  struct Stats {
    int64_t bytes = 0;       // gradient bytes summed (each rank's contribution)
    int64_t buckets = 0;
    double comm_s = 0;       // seconds the communication thread spent in all-reduces
    double exposed_s = 0;    // seconds finish() waited: communication not hidden behind compute
  };
  GradReducer(Group& group, float* grads, int64_t total, int64_t bucket_floats);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  void begin_step();                // nothing final yet
  void ready_from(int64_t offset);  // [offset, total) is final
  void finish();                    // all buckets sent and summed
  const Stats& stats() const { return stats_; }  // since construction
  int64_t bucket_floats() const { return bucket_; }

 private:
  void submit(int64_t begin, int64_t end);
  void loop();
  Group& g_;
  float* grads_;
  int64_t total_, bucket_;
  int64_t sent_from_ = 0;   // [sent_from_, total) has been handed to the thread
  int64_t final_from_ = 0;  // [final_from_, total) is final
  Stats stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<int64_t, int64_t>> queue_;
  int64_t in_flight_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace longctx::dist
