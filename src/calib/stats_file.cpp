#include "calib/stats_file.h"

#include <ATen/ATen.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace rankrl {

namespace {

constexpr const char* kFormat = "rankrl-calib-stats-v1";

at::Tensor read_tensor(const SafetensorsFile& f, const std::string& name, DType want) {
  const TensorInfo* t = f.find(name);
  if (!t) return {};
  check(t->dtype == want, f.path(), "tensor " + quote_name(name) + " has dtype " + dtype_name(t->dtype) +
                                        ", expected " + dtype_name(want));
  at::Tensor out = at::empty(t->shape, want == DType::F64 ? at::kDouble : at::kFloat);
  std::memcpy(out.data_ptr(), f.data(*t), t->end - t->begin);
  return out;
}

std::string meta_entry(const SafetensorsFile& f, const std::string& key) {
  auto it = f.header().metadata.find(key);
  check(it != f.header().metadata.end(), f.path(), "metadata entry '" + key + "' is missing");
  return it->second;
}

int64_t meta_int(const SafetensorsFile& f, const std::string& key) {
  try {
    return std::stoll(meta_entry(f, key));
  } catch (const std::logic_error&) {
    throw Error(f.path(), "metadata entry '" + key + "' is not an integer");
  }
}

}  // namespace

namespace {

// A tensor of the file, in file order.
struct StatTensor {
  std::string name;
  at::Tensor tensor;
};

// The tensors of `s` in file order: by weight name; gram and abs_mean once per shared input,
// under its owner; the Fisher matrix of every weight that has one.
std::vector<StatTensor> tensors_of(const CalibStats& s) {
  std::vector<StatTensor> out;
  for (const auto& [name, st] : s.stats) {
    const std::string& owner = s.shared_input.count(name) ? s.shared_input.at(name) : name;
    if (owner == name) {
      out.push_back({name + ".gram", st.gram});
      out.push_back({name + ".abs_mean", st.abs_mean});
    }
    if (st.fisher.defined()) out.push_back({name + ".fisher", st.fisher});
  }
  return out;
}

DType stat_dtype(const std::string& path, const StatTensor& t) {
  const at::ScalarType type = t.tensor.scalar_type();
  check(type == at::kDouble || type == at::kFloat, path, "cannot write tensor " + quote_name(t.name) + ": not F32/F64");
  return type == at::kDouble ? DType::F64 : DType::F32;
}

// Group g's statistics laid out like `first` (group 0's), with group g's names: the k-th name of
// group 0 stands for the k-th of group g. Only names, dtypes and shapes are filled in (the
// tensors are empty), plus the shared inputs.
CalibStats like_first(const CalibStats& first, const std::vector<std::string>& names0,
                      const std::vector<std::string>& names, const std::string& path) {
  check(names.size() == names0.size(), path, "every group needs as many weights as the first");
  std::map<std::string, std::string> rename;
  for (size_t k = 0; k < names0.size(); ++k) rename[names0[k]] = names[k];
  CalibStats g;
  for (const auto& [name0, st0] : first.stats) {
    check(rename.count(name0), path, "statistics of " + quote_name(name0) + " are not in the first group");
    LinearStats st;
    st.gram = at::empty(st0.gram.sizes(), st0.gram.options());
    st.abs_mean = at::empty(st0.abs_mean.sizes(), st0.abs_mean.options());
    if (st0.fisher.defined()) st.fisher = at::empty(st0.fisher.sizes(), st0.fisher.options());
    g.stats[rename.at(name0)] = st;
    const auto owner = first.shared_input.find(name0);
    g.shared_input[rename.at(name0)] = rename.at(owner == first.shared_input.end() ? name0 : owner->second);
  }
  return g;
}

}  // namespace

CalibStatsWriter::CalibStatsWriter(std::string path, const CalibStats& meta, std::string calib_file,
                                   std::vector<std::vector<std::string>> groups)
    : path_(std::move(path)), calib_file_(std::move(calib_file)), groups_(std::move(groups)) {
  meta_.tokens = meta.tokens;
  meta_.ctx = meta.ctx;
  meta_.windows = meta.windows;
  meta_.fisher = meta.fisher;
  meta_.model_identity = meta.model_identity;
}

CalibStatsWriter::~CalibStatsWriter() = default;

// The whole layout from the first group: the header, then the data as the groups come.
void CalibStatsWriter::start(const CalibStats& first) {
  std::vector<TensorBytes> layout;
  std::map<std::string, std::string> shared_input;
  for (const auto& names : groups_) {
    // Empty tensors of the right shapes (at::empty of a [5632, 5632] F64 reserves address space
    // only; no page is touched).
    const CalibStats g = like_first(first, groups_[0], names, path_);
    for (const StatTensor& t : tensors_of(g)) layout.push_back({t.name, stat_dtype(path_, t), t.tensor.sizes().vec(), {}});
    shared_input.insert(g.shared_input.begin(), g.shared_input.end());
  }
  const std::map<std::string, std::string> metadata = {
      {"format", kFormat},
      {"model_identity", meta_.model_identity},
      {"tokens", std::to_string(meta_.tokens)},
      {"ctx", std::to_string(meta_.ctx)},
      {"windows", std::to_string(meta_.windows)},
      {"fisher", meta_.fisher ? "true" : "false"},
      {"calib_file", calib_file_},
      {"shared_input", nlohmann::json(shared_input).dump()}};
  out_ = std::make_unique<SafetensorsWriter>(path_, std::move(layout), metadata);
}

void CalibStatsWriter::add(const CalibStats& s) {
  check(added_ < groups_.size(), path_, "more groups of statistics than announced");
  check(s.windows == meta_.windows, path_, "statistics over " + std::to_string(s.windows) +
                                               " windows, the header says " + std::to_string(meta_.windows));
  if (!out_) start(s);
  for (const StatTensor& t : tensors_of(s)) {
    const size_t i = out_->written();
    const bool expected = i < out_->layout().size() && out_->layout()[i].name == t.name &&
                          out_->layout()[i].dtype == stat_dtype(path_, t) &&
                          out_->layout()[i].shape == t.tensor.sizes().vec();
    check(expected, path_, "statistics " + quote_name(t.name) + " do not fit the layout of the first group");
    const at::Tensor c = t.tensor.contiguous();
    out_->write_next(std::string_view(static_cast<const char*>(c.data_ptr()), c.nbytes()));
  }
  ++added_;
}

void CalibStatsWriter::commit() {
  check(added_ == groups_.size() && out_, path_, "statistics of " + std::to_string(groups_.size() - added_) +
                                                     " group(s) are missing");
  out_->commit();
}

void save_calib_stats(const std::string& path, const CalibStats& s, const std::string& calib_file) {
  std::vector<std::string> names;
  for (const auto& [name, st] : s.stats) names.push_back(name);
  CalibStatsWriter w(path, s, calib_file, {names});
  w.add(s);
  w.commit();
}

CalibStatsReader::CalibStatsReader(const std::string& path)
    : file_(std::make_unique<SafetensorsFile>(SafetensorsFile::open(path))) {
  const SafetensorsFile& f = *file_;
  check(meta_entry(f, "format") == kFormat, path, "not a rankrl calibration statistics file");
  meta_.model_identity = meta_entry(f, "model_identity");
  meta_.tokens = meta_int(f, "tokens");
  meta_.ctx = meta_int(f, "ctx");
  meta_.windows = meta_int(f, "windows");
  meta_.fisher = meta_entry(f, "fisher") == "true";
  nlohmann::json shared;
  try {
    shared = nlohmann::json::parse(meta_entry(f, "shared_input"));
  } catch (const nlohmann::json::exception&) {
    throw Error(path, "metadata entry 'shared_input' is not valid JSON");
  }
  check(shared.is_object(), path, "metadata entry 'shared_input' is not a JSON object");
  for (const auto& [name, owner_j] : shared.items()) {
    check(owner_j.is_string(), path, "shared_input of " + quote_name(name) + " is not a string");
    meta_.shared_input[name] = owner_j.get<std::string>();
  }
}

CalibStatsReader::~CalibStatsReader() = default;
CalibStatsReader::CalibStatsReader(CalibStatsReader&&) noexcept = default;

CalibStats CalibStatsReader::read(const std::vector<std::string>& names) const {
  const SafetensorsFile& f = *file_;
  const std::string& path = f.path();
  CalibStats s = meta_;
  s.shared_input.clear();
  std::map<std::string, LinearStats> by_owner;  // linears sharing an input share its tensors
  for (const std::string& name : names) {
    auto it = meta_.shared_input.find(name);
    if (it == meta_.shared_input.end()) continue;
    const std::string& owner = it->second;
    if (!by_owner.count(owner)) {
      LinearStats o;
      o.gram = read_tensor(f, owner + ".gram", DType::F64);
      o.abs_mean = read_tensor(f, owner + ".abs_mean", DType::F32);
      check(o.gram.defined() && o.abs_mean.defined(), path, "no gram/abs_mean for " + quote_name(name));
      by_owner[owner] = o;
    }
    LinearStats st = by_owner.at(owner);
    st.fisher = read_tensor(f, name + ".fisher", DType::F32);
    st.tokens = s.tokens;
    const int64_t n = st.gram.dim() == 2 ? st.gram.size(1) : -1;
    validate_stats(st, st.fisher.defined() ? st.fisher.size(0) : -1, n, path + ": " + name);
    s.stats[name] = st;
    s.shared_input[name] = owner;
  }
  return s;
}

CalibStats load_calib_stats(const std::string& path) {
  CalibStatsReader r(path);
  std::vector<std::string> names;
  for (const auto& [name, owner] : r.meta().shared_input) names.push_back(name);
  return r.read(names);
}

}  // namespace rankrl
