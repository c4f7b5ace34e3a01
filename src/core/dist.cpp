#include "core/dist.h"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace rankrl::dist {

namespace {
bool g_mpi = false;  // MPI_Init was called
int g_rank = 0, g_size = 1;

bool launched_by_mpirun() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE"); }

void mpi_check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw Error("", std::string("MPI ") + what + " failed (code " + std::to_string(rc) + ")");
}

// Test-only: RANKRL_TEST_FAIL_RANK=R makes rank R fail in its first shared unit, to show that a
// failure on any rank ends every rank with one error line.
void maybe_fail_for_test() {
  const char* r = std::getenv("RANKRL_TEST_FAIL_RANK");
  if (r && std::atoi(r) == g_rank)
    throw Error("", "injected failure on rank " + std::to_string(g_rank) + " (RANKRL_TEST_FAIL_RANK)");
}
// Waits for a non-blocking collective by testing it between short sleeps instead of MPI's busy
// poll: a rank that finished its share early gives its core to the ranks still working (which
// matters whenever ranks share cores with each other or with other work). The sleep grows from
// 20 µs to 1 ms, so a wait costs at most ~1 ms more than the slowest rank's work.
void wait_sleeping(MPI_Request& request, const char* what) {
  int done = 0;
  for (int64_t pause_us = 20;; pause_us = std::min<int64_t>(pause_us * 2, 1000)) {
    mpi_check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
  }
}
}  // namespace

void init(int* argc, char*** argv) {
  if (g_mpi || !launched_by_mpirun()) return;
  mpi_check(MPI_Init(argc, argv), "init");
  g_mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  // Rank 0 alone prints results: the others' stdout goes nowhere (stderr stays for errors).
  if (g_rank != 0 && !std::freopen("/dev/null", "w", stdout)) std::fclose(stdout);
}

void finalize() {
  if (!g_mpi) return;
  MPI_Finalize();
  g_mpi = false;
}

int rank() { return g_rank; }
int size() { return g_size; }

void barrier() {
  if (g_size == 1) return;
  MPI_Request request;
  mpi_check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "barrier");
  wait_sleeping(request, "barrier");
}

void abort_all(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (g_mpi && g_size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

std::vector<std::string> allgather(const std::string& mine) {
  if (g_size == 1) return {mine};
  // Sizes first, then the bytes (MPI counts are int: a unit's results stay far below 2 GiB).
  check(mine.size() < size_t(1) << 31, "", "MPI message over 2 GiB");
  int n = int(mine.size());
  std::vector<int> counts(g_size), offsets(g_size);
  MPI_Request request;
  mpi_check(MPI_Iallgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD, &request), "allgather");
  wait_sleeping(request, "allgather");
  int64_t total = 0;
  for (int r = 0; r < g_size; ++r) {
    offsets[r] = int(total);
    total += counts[r];
  }
  check(total < int64_t(1) << 31, "", "MPI message over 2 GiB");
  std::string all(size_t(total), '\0');
  mpi_check(MPI_Iallgatherv(mine.data(), n, MPI_BYTE, all.data(), counts.data(), offsets.data(), MPI_BYTE, MPI_COMM_WORLD,
                            &request),
            "allgatherv");
  wait_sleeping(request, "allgatherv");
  std::vector<std::string> out(g_size);
  for (int r = 0; r < g_size; ++r) out[r] = all.substr(size_t(offsets[r]), size_t(counts[r]));
  return out;
}

void broadcast(std::string& bytes) {
  if (g_size == 1) return;
  uint64_t n = bytes.size();
  mpi_check(MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD), "broadcast");
  bytes.resize(size_t(n));
  // In pieces: MPI counts are int.
  constexpr uint64_t kPiece = uint64_t(1) << 30;
  for (uint64_t at = 0; at < n; at += kPiece)
    mpi_check(MPI_Bcast(bytes.data() + at, int(std::min(kPiece, n - at)), MPI_BYTE, 0, MPI_COMM_WORLD), "broadcast");
}

std::vector<std::string> share(size_t n, const std::function<std::string(size_t)>& compute) {
  std::vector<std::string> out(n);
  if (g_size > 1) maybe_fail_for_test();
  if (g_size == 1) {
    for (size_t i = 0; i < n; ++i) out[i] = compute(i);
    return out;
  }
  // Each rank packs its units (in order) into one buffer; unit i of rank r is its k-th, k = i / size.
  Writer w;
  for (size_t i = size_t(g_rank); i < n; i += size_t(g_size)) w.put_bytes(compute(i));
  const std::vector<std::string> parts = allgather(w.take());
  for (int r = 0; r < g_size; ++r) {
    Reader rd(parts[r]);
    for (size_t i = size_t(r); i < n; i += size_t(g_size)) out[i] = rd.get_bytes();
  }
  return out;
}

std::vector<double> share_doubles(size_t n, const std::function<double(size_t)>& compute) {
  const std::vector<std::string> parts = share(n, [&](size_t i) {
    Writer w;
    w.put(compute(i));
    return w.take();
  });
  std::vector<double> out;
  for (const std::string& p : parts) out.push_back(Reader(p).get<double>());
  return out;
}

void Reader::check(size_t n) const {
  if (pos_ + n > bytes_.size()) throw Error("", "internal: truncated MPI message");
}

}  // namespace rankrl::dist
