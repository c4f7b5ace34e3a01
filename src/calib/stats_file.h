// Calibration statistics on disk: one safetensors file. Tensors `<weight>.gram` (F64 [n,n]),
// `<weight>.abs_mean` (F32 [n]) and `<weight>.fisher` (F32 [m,n], with --fisher). Linears that
// share an input store gram/abs_mean once, under the first of them; the metadata entry
// "shared_input" (JSON {weight: owner}) says whose. Metadata also holds format, model identity,
// tokens, ctx, windows, fisher and the calibration file.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "calib/calibrate.h"

namespace rankrl {

class SafetensorsWriter;

// Writes a statistics file piece by piece (layer-streamed calibration) without a second copy on
// disk: the layout of every group's tensors is known once the first group arrives (every decoder
// layer has the same linears and shapes), so the header is written then, and each group's data
// goes straight after it into the one temporary file that commit() renames into place. Destroyed
// without commit(): nothing is written.
class CalibStatsWriter {
 public:
  // `meta`: tokens, ctx, windows, fisher and model identity (its stats are not written);
  // `groups`: the weight names of each group in the order add() receives them (for layer-streamed
  // calibration, layer i's Transformer::layer_linears(i)).
  CalibStatsWriter(std::string path, const CalibStats& meta, std::string calib_file,
                   std::vector<std::vector<std::string>> groups);
  ~CalibStatsWriter();
  CalibStatsWriter(const CalibStatsWriter&) = delete;
  CalibStatsWriter& operator=(const CalibStatsWriter&) = delete;

  // The next group's statistics (windows must match meta's); Error if they do not match the layout.
  void add(const CalibStats& stats);
  void commit();  // Error unless every group was added

 private:
  void start(const CalibStats& first);
  std::string path_, calib_file_;
  CalibStats meta_;
  std::vector<std::vector<std::string>> groups_;
  size_t added_ = 0;
  std::unique_ptr<SafetensorsWriter> out_;
};

// Atomic write (temporary file + rename).
void save_calib_stats(const std::string& path, const CalibStats& stats, const std::string& calib_file);

class SafetensorsFile;

// Reads a statistics file piece by piece (layer-streamed compression): the file is memory-mapped
// and only the statistics asked for are copied out.
class CalibStatsReader {
 public:
  explicit CalibStatsReader(const std::string& path);  // checks the metadata
  ~CalibStatsReader();
  CalibStatsReader(CalibStatsReader&&) noexcept;
  // tokens, ctx, windows, fisher, model identity and every weight's shared_input; no statistics.
  const CalibStats& meta() const { return meta_; }
  // The statistics of `names` (names without statistics in the file are left out), validated
  // (shapes, dtypes, NaN/Inf → Error(path, ...)); linears sharing an input share its tensors.
  CalibStats read(const std::vector<std::string>& names) const;

 private:
  std::unique_ptr<SafetensorsFile> file_;
  CalibStats meta_;
};

// Reads and validates every weight's statistics (shapes, dtypes, NaN/Inf → Error(path, ...)).
CalibStats load_calib_stats(const std::string& path);

}  // namespace rankrl
