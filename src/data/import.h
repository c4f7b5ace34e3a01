// `rankrl data import`: other task formats into the uniform schema (data/tasks.h).
//   piqa       original PIQA: {"goal","sol1","sol2"} per line + a labels file (one 0/1 per line)
//   hellaswag  llama.cpp's hellaswag_score text, 6 lines per task: context, gold index (0-3),
//              four endings
//   cloze      {"context","continuation"} per line (LAMBADA style) → kind "cloze"
//   partial    {"context_options":[...], "continuation", "gold" (0-based) | "answer" (1-based,
//              WinoGrande)} per line → kind "partial"
// The scorer joins context and continuation with one space, so a continuation's single leading
// space (as LAMBADA-style files often store it) is dropped on import.
#pragma once
#include <string>
#include <vector>

#include "data/tasks.h"

namespace rankrl {

// Throws Error naming the input (and line) on malformed input; validates every item.
std::vector<TaskItem> import_tasks(const std::string& format, const std::string& in,
                                   const std::string& labels = "");

}  // namespace rankrl
