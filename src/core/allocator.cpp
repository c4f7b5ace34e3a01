#include "core/allocator.h"

#include <malloc.h>

namespace rankrl {

void tune_allocator() {
  // Fixing either threshold also turns off glibc's dynamic threshold adjustment.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  // Never trim the heap top on free(): the next forward pass needs the same memory again.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
}

}  // namespace rankrl
