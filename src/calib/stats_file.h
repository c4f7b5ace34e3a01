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

// Writes a statistics file piece by piece (layer-streamed calibration): add() appends a group of
// linears' tensors to an anonymous temporary file and drops them; commit() writes the header (the
// safetensors header comes first, and only then are all names known) followed by the collected
// data to `path` atomically. Destroyed without commit(): nothing is written.
class CalibStatsWriter {
 public:
  explicit CalibStatsWriter(std::string path);
  ~CalibStatsWriter();
  CalibStatsWriter(const CalibStatsWriter&) = delete;
  CalibStatsWriter& operator=(const CalibStatsWriter&) = delete;

  void add(const CalibStats& stats);
  // `meta`: tokens, ctx, windows, fisher, model identity (its stats are not written again).
  void commit(const CalibStats& meta, const std::string& calib_file);

 private:
  void append(const std::string& name, const at::Tensor& t);
  struct Entry {
    std::string name;
    bool f64;
    std::vector<int64_t> shape;
    uint64_t bytes;
  };
  std::string path_;
  std::FILE* data_ = nullptr;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> shared_input_;
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
