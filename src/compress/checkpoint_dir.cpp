#include "compress/checkpoint_dir.h"

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/dist.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "model/model.h"
#include "model/transformer.h"

namespace rankrl {

namespace fs = std::filesystem;

namespace {

constexpr const char* kVersion = "0.1.0";

// Adds {"rankrl": section} to the config.json written by save_hf_checkpoint.
void add_rankrl_section(const std::string& config_path, const nlohmann::json& section) {
  nlohmann::json config = nlohmann::json::parse(read_file(config_path));
  config["rankrl"] = section;
  write_file_atomic(config_path, config.dump(2) + "\n");
}

}  // namespace

// "out/" must stage in "out.tmp-<pid>", not inside "out".
std::string without_trailing_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

DestinationLock::DestinationLock(const std::string& dest) {
  const fs::path d = fs::path(without_trailing_slash(dest));
  const fs::path parent = d.has_parent_path() ? d.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  path_ = (parent / ("." + d.filename().string() + ".lock")).string();
  lock_ = FileLock::try_acquire(path_);
  if (!lock_)
    throw Error(d.string(), "another rankrl process is writing it (lock " + path_ + "); wait for it or choose another output");
}

// Removed while still held: a process that opened the old file before the unlink finds it locked
// and refuses, one that comes after creates a fresh file; the directory is in place by then.
DestinationLock::~DestinationLock() {
  std::error_code ec;
  if (dist::is_root()) fs::remove(path_, ec);
}

StagingDir::StagingDir(std::string dest, bool replace)
    : dest_(without_trailing_slash(std::move(dest))), tmp_(dest_ + ".tmp-" + std::to_string(getpid())),
      replace_(replace) {
  if (!dist::is_root()) return;  // rank 0 alone writes (core/dist.h)
  std::error_code ec;
  if (fs::exists(dest_) && !(fs::is_directory(dest_) && fs::is_empty(dest_)) && !replace_)
    throw Error(dest_, "already exists and is not empty (pass --force to replace it)");
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  check(!ec, tmp_, "cannot create directory: " + ec.message());
}

StagingDir::~StagingDir() {
  if (!dist::is_root()) return;
  std::error_code ec;
  if (!committed_) fs::remove_all(tmp_, ec);
}

std::string StagingDir::file(const std::string& name) const { return (fs::path(tmp_) / name).string(); }

void StagingDir::commit() {
  if (!dist::is_root()) return;
  std::error_code ec;
  fs::remove_all(dest_, ec);  // empty, or replace_ was given
  fs::rename(tmp_, dest_, ec);
  check(!ec, dest_, "cannot move the finished directory into place: " + ec.message());
  committed_ = true;
}

void write_compressed_files(const StagingDir& stage, const Transformer& net, const Plan& plan,
                            const std::string& tokenizer_path, std::optional<DType> dtype) {
  if (!dist::is_root()) return;  // it reads back what it wrote
  save_hf_checkpoint(stage.path(), net.config(), net.weights(), dtype.value_or(net.stored_dtype()));
  add_rankrl_section(stage.file("config.json"), {{"version", kVersion}, {"plan", plan_to_json(plan)}});
  write_tokenizer_files(tokenizer_path, net.config().vocab_size, stage.path());
  write_plan(stage.file("plan.json"), plan);
}

void write_compressed_dir(const std::string& out, const Transformer& net, const Plan& plan,
                          const nlohmann::json& report, const std::string& tokenizer_path, bool replace,
                          std::optional<DType> dtype) {
  check_tokenizer_writable(tokenizer_path, net.config().vocab_size);
  DestinationLock lock(out);
  StagingDir stage(out, replace);
  write_compressed_files(stage, net, plan, tokenizer_path, dtype);
  write_file_atomic(stage.file("report.json"), report.dump(2) + "\n");
  stage.commit();
}

int64_t export_dense(const std::string& model_path, const std::string& tokenizer_path,
                     const std::string& out, bool replace) {
  DestinationLock lock(out);
  Model m = load_model(model_path, tokenizer_path);
  WeightMap w = m.net->weights();
  int64_t multiplied = 0;
  for (const Linear* l : m.net->linears()) {
    if (!l->is_low_rank()) continue;
    w.erase(l->name() + kLowRankA);
    w.erase(l->name() + kLowRankB);
    w[l->name()] = l->dense_weight();
    ++multiplied;
  }
  const std::string tok = tokenizer_path.empty() ? default_tokenizer_path(model_path) : tokenizer_path;
  check_tokenizer_writable(tok, m.config().vocab_size);
  StagingDir stage(out, replace);
  save_hf_checkpoint(stage.path(), m.config(), w, m.net->stored_dtype());
  write_tokenizer_files(tok, m.config().vocab_size, stage.path());
  stage.commit();
  return multiplied;
}

}  // namespace rankrl
