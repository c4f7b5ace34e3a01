// Work spread over processes with MPI (`mpirun -q -np N rankrl ...`). Every rank runs the same
// deterministic program; only independent, expensive units (ranking batches, KL and perplexity
// windows, factorizations) are split, and their results are gathered to every rank in unit
// order, so any rank count computes exactly what one process computes. Rank 0 alone writes files
// and prints. Without mpirun (no OMPI_COMM_WORLD_SIZE / PMI_SIZE in the environment) no MPI
// function is ever called: size 1, rank 0.
#pragma once
#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace rankrl::dist {

// MPI_Init when launched by mpirun; else nothing. Call once, first thing in main.
void init(int* argc, char*** argv);
// MPI_Finalize when init() started MPI.
void finalize();

int rank();
int size();
inline bool is_root() { return rank() == 0; }
inline bool active() { return size() > 1; }

void barrier();
// Ends every rank with `exit_code` (MPI_Abort); a plain exit when not under MPI.
[[noreturn]] void abort_all(int exit_code);

// Every rank's `mine`, in rank order, on every rank.
std::vector<std::string> allgather(const std::string& mine);
// Rank 0's `bytes` on every rank.
void broadcast(std::string& bytes);

// The rank that computes unit `i` of `n`: round robin, so units of similar cost (batches sorted
// by length, equal windows) spread evenly.
inline int owner(size_t i) { return int(i % size_t(size())); }

// Runs compute(i) for this rank's units of 0..n-1 and returns every unit's bytes in unit order,
// on every rank. compute must be deterministic in i alone (not in which rank runs it).
std::vector<std::string> share(size_t n, const std::function<std::string(size_t)>& compute);
// The same for units that are one double each (bit-exact: doubles travel as bytes).
std::vector<double> share_doubles(size_t n, const std::function<double(size_t)>& compute);

// Little helpers to pack unit results into bytes.
class Writer {
 public:
  template <class T> void put(const T& v) { bytes_.append(reinterpret_cast<const char*>(&v), sizeof(T)); }
  void put_bytes(const std::string& s) { put(s.size()); bytes_ += s; }
  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : bytes_(bytes) {}
  template <class T> T get() {
    T v;
    check(sizeof(T));
    std::copy_n(bytes_.data() + pos_, sizeof(T), reinterpret_cast<char*>(&v));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_bytes() {
    const size_t n = get<size_t>();
    check(n);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  void check(size_t n) const;
  const std::string& bytes_;
  size_t pos_ = 0;
};

}  // namespace rankrl::dist
