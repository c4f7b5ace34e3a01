// Compressed model directories: an HF-style directory whose factored projections are stored as
// <name>.lowrank_A [out, r] / <name>.lowrank_B [r, in] (see io/checkpoint.h), every other tensor
// unchanged, plus config.json with a "rankrl" section (version, plan), the tokenizer, plan.json
// and report.json. load_checkpoint/load_model open such a directory directly.
//
// Every directory is built in `<out>.tmp-<pid>` and renamed into place at the end, so a failure
// leaves nothing at `out`.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <optional>
#include <string>

#include "core/fs.h"
#include "io/safetensors.h"
#include "plan/plan.h"
#include "tokenizer/files.h"  // write_tokenizer_files, check_tokenizer_writable (used with these)

namespace rankrl {

class Transformer;

// A directory being built beside its destination; commit() renames it into place, destruction
// without commit() removes it. An existing non-empty destination is an error unless `replace`.
// The exclusive right to write the directory `dest` (compress --out, export-dense, a search's
// model/): an advisory lock on the sibling file `.<name>.lock`, which is removed when the lock is
// released (after the directory is in place). A second rankrl process writing the same `dest`
// gets Error(dest, "another rankrl process is writing it ..."). Taken before any long work.
class DestinationLock {
 public:
  explicit DestinationLock(const std::string& dest);
  ~DestinationLock();
  DestinationLock(const DestinationLock&) = delete;
  DestinationLock& operator=(const DestinationLock&) = delete;

 private:
  std::string path_;
  std::unique_ptr<FileLock> lock_;
};

class StagingDir {
 public:
  StagingDir(std::string dest, bool replace);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  const std::string& path() const { return tmp_; }
  std::string file(const std::string& name) const;
  void commit();

 private:
  std::string dest_, tmp_;
  bool replace_, committed_ = false;
};


// The files of a compressed directory except report.json, written into `stage`; the caller
// times this, then writes report.json (with the write time) and commits. Every tensor (factors
// included) is written in `dtype`, by default the dtype the source model was stored in
// (Transformer::stored_dtype: a BF16 model stays BF16).
void write_compressed_files(const StagingDir& stage, const Transformer& net, const Plan& plan,
                            const std::string& tokenizer_path, std::optional<DType> dtype = std::nullopt);

// Writes `net` (factored or not) with its plan and report to `out` (see above).
void write_compressed_dir(const std::string& out, const Transformer& net, const Plan& plan,
                          const nlohmann::json& report, const std::string& tokenizer_path, bool replace,
                          std::optional<DType> dtype = std::nullopt);

// Loads a (compressed) model directory and writes it as a standard dense checkpoint: every
// factored weight becomes A·B. Returns the number of weights multiplied back.
int64_t export_dense(const std::string& model_path, const std::string& tokenizer_path,
                     const std::string& out, bool replace);

}  // namespace rankrl
