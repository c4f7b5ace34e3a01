// The rankrl version recorded in every result file and printed by --version.
#pragma once

namespace rankrl {
inline constexpr const char* kVersion = "0.1.0";
}
