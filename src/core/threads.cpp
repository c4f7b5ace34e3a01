#include "core/threads.h"

#include "core/allocator.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <string>
#include <thread>

namespace rankrl {

int setup_threads(int requested) {
  tune_allocator();  // every entry point comes here first
  int n = requested;
  if (n <= 0) {
    const char* env = std::getenv("OMP_NUM_THREADS");
    if (env) n = std::atoi(env);
  }
  // Debian's libtorch defaults to one intra-op thread; we want every core unless told otherwise.
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return n;
}

}  // namespace rankrl
