// Thread setup: --threads N, else OMP_NUM_THREADS, else every core.
#pragma once

namespace rankrl {

// Applies the thread count to libtorch (intra-op) and returns it. `requested` <= 0 means "default".
// Also tunes the allocator (core/allocator.h): every command and benchmark starts here.
int setup_threads(int requested);

}  // namespace rankrl
