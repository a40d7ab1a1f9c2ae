#include "dist/comm.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/check.h"

#ifdef LONGCTX_HAVE_MPI
// MPI's C interface only (the deprecated C++ bindings would need their own library).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace longctx::dist {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

bool built_with_mpi() {
#ifdef LONGCTX_HAVE_MPI
  return true;
#else
  return false;
#endif
}

Group& Group::single() {
  static Group g;
  return g;
}

Expected<Group*> Group::world() {
  static Group* made = nullptr;
  static Status failed = Status::Ok();
  if (made) return made;
  if (!failed.ok()) return failed;
  if (!launched_by_mpi()) return made = &single();
#ifdef LONGCTX_HAVE_MPI
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    return failed = Status::Error("MPI_Init_thread failed");
  static Group g;
  g.mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &g.size_);
  if (provided < MPI_THREAD_SERIALIZED && g.size_ > 1) {
    MPI_Finalize();
    return failed = Status::Error("this MPI library gives thread level " + std::to_string(provided) +
                                  "; the gradient thread needs MPI_THREAD_SERIALIZED");
  }
  std::atexit([] { g.finalize(); });
  return made = &g;
#else
  return failed = Status::Error(
             "this process was started by an MPI launcher, but this longctx was built without MPI "
             "(install libopenmpi-dev and rebuild; CMake option LONGCTX_MPI)");
#endif
}

#ifdef LONGCTX_HAVE_MPI
namespace {
template <typename T>
void allreduce_sum(T* x, int64_t n, MPI_Datatype type) {
  // MPI counts are ints: large buffers go in pieces.
  constexpr int64_t kPiece = int64_t{1} << 30;
  for (int64_t i = 0; i < n; i += kPiece) {
    const int count = static_cast<int>(std::min(kPiece, n - i));
    const int rc = MPI_Allreduce(MPI_IN_PLACE, x + i, count, type, MPI_SUM, MPI_COMM_WORLD);
    CHECK_MSG(rc == MPI_SUCCESS, "MPI_Allreduce failed");
  }
}
}  // namespace
#endif

void Group::sum(float* x, int64_t n) {
#ifdef LONGCTX_HAVE_MPI
  if (mpi_ && size_ > 1) allreduce_sum(x, n, MPI_FLOAT);
#endif
}

void Group::sum(double* x, int64_t n) {
#ifdef LONGCTX_HAVE_MPI
  if (mpi_ && size_ > 1) allreduce_sum(x, n, MPI_DOUBLE);
#endif
}

void Group::barrier() {
#ifdef LONGCTX_HAVE_MPI
  if (mpi_ && size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void Group::sendrecv(const void* send, void* recv, int64_t bytes, int dest, int src) {
  CHECK(dest >= 0 && dest < size_ && src >= 0 && src < size_);
#ifdef LONGCTX_HAVE_MPI
  if (mpi_ && size_ > 1) {
    constexpr int64_t kPiece = int64_t{1} << 30;
    const auto* s = static_cast<const uint8_t*>(send);
    auto* r = static_cast<uint8_t*>(recv);
    for (int64_t i = 0; i < bytes; i += kPiece) {
      const int n = static_cast<int>(std::min(kPiece, bytes - i));
      const int rc = MPI_Sendrecv(s + i, n, MPI_BYTE, dest, 0, r + i, n, MPI_BYTE, src, 0, MPI_COMM_WORLD,
                                  MPI_STATUS_IGNORE);
      CHECK_MSG(rc == MPI_SUCCESS, "MPI_Sendrecv failed");
    }
    return;
  }
#endif
  if (send != recv) std::memcpy(recv, send, static_cast<size_t>(bytes));
}

void Group::abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef LONGCTX_HAVE_MPI
  if (mpi_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

void Group::finalize() {
#ifdef LONGCTX_HAVE_MPI
  if (mpi_ && !finalized_) {
    finalized_ = true;
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
  }
#endif
}

GradReducer::GradReducer(Group& group, float* grads, int64_t total, int64_t bucket_floats)
    : g_(group), grads_(grads), total_(total), bucket_(std::max<int64_t>(bucket_floats, 1)) {
  sent_from_ = final_from_ = total_;
  if (g_.distributed()) thread_ = std::thread([this] { loop(); });
}

GradReducer::~GradReducer() {
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GradReducer::begin_step() {
  CHECK_MSG(sent_from_ == final_from_ && in_flight_ == 0, "GradReducer::begin_step with buckets unsent");
  sent_from_ = final_from_ = total_;
}

void GradReducer::ready_from(int64_t offset) {
  offset = std::clamp<int64_t>(offset, 0, total_);
  if (offset >= final_from_) return;
  final_from_ = offset;
  if (sent_from_ - final_from_ >= bucket_) {
    submit(final_from_, sent_from_);
    sent_from_ = final_from_;
  }
}

void GradReducer::submit(int64_t begin, int64_t end) {
  if (begin >= end) return;
  stats_.bytes += (end - begin) * static_cast<int64_t>(sizeof(float));
  ++stats_.buckets;
  if (!g_.distributed()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.emplace_back(begin, end);
    ++in_flight_;
  }
  cv_.notify_all();
}

void GradReducer::finish() {
  ready_from(0);
  submit(0, sent_from_);
  sent_from_ = 0;
  if (!g_.distributed()) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return in_flight_ == 0; });
  stats_.exposed_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void GradReducer::loop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return quit_ || !queue_.empty(); });
    if (queue_.empty()) return;  // quit with nothing left
    const auto [begin, end] = queue_.front();
    queue_.pop_front();
    l.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    g_.sum(grads_ + begin, end - begin);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    l.lock();
    stats_.comm_s += s;
    --in_flight_;
    cv_.notify_all();
  }
}

}  // namespace longctx::dist
