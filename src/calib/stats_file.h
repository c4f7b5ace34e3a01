// Calibration statistics on disk: one safetensors file. Tensors `<weight>.gram` (F64 [n,n]),
// `<weight>.abs_mean` (F32 [n]) and `<weight>.fisher` (F32 [m,n], with --fisher). Linears that
// share an input store gram/abs_mean once, under the first of them; the metadata entry
// "shared_input" (JSON {weight: owner}) says whose. Metadata also holds format, model identity,
// tokens, ctx, windows, fisher and the calibration file.
#pragma once
#include <string>

#include "calib/calibrate.h"

namespace rankrl {

// Atomic write (temporary file + rename).
void save_calib_stats(const std::string& path, const CalibStats& stats, const std::string& calib_file);

// Reads and validates (shapes, dtypes, NaN/Inf → Error(path, ...)).
CalibStats load_calib_stats(const std::string& path);

}  // namespace rankrl
