#include "calib/stats_file.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "io/safetensors.h"

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

CalibStatsWriter::CalibStatsWriter(std::string path) : path_(std::move(path)) {
  data_ = std::tmpfile();  // anonymous: gone when closed, whatever happens
  if (!data_) throw Error(path_, std::string("cannot create a temporary file: ") + std::strerror(errno));
}

CalibStatsWriter::~CalibStatsWriter() {
  if (data_) std::fclose(data_);
}

void CalibStatsWriter::append(const std::string& name, const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  check(c.scalar_type() == at::kDouble || c.scalar_type() == at::kFloat, path_,
        "cannot write tensor " + quote_name(name) + ": not F32/F64");
  const size_t n = c.nbytes();
  if (n > 0 && std::fwrite(c.data_ptr(), 1, n, data_) != n)
    throw Error(path_, std::string("write failed: ") + std::strerror(errno));
  entries_.push_back({name, c.scalar_type() == at::kDouble, c.sizes().vec(), uint64_t(n)});
}

void CalibStatsWriter::add(const CalibStats& s) {
  for (const auto& [name, st] : s.stats) {
    const std::string& owner = s.shared_input.count(name) ? s.shared_input.at(name) : name;
    check(!shared_input_.count(name), path_, "statistics of " + quote_name(name) + " added twice");
    shared_input_[name] = owner;
    if (owner == name) {
      append(name + ".gram", st.gram);
      append(name + ".abs_mean", st.abs_mean);
    }
    if (st.fisher.defined()) append(name + ".fisher", st.fisher);
  }
}

void CalibStatsWriter::commit(const CalibStats& m, const std::string& calib_file) {
  const std::map<std::string, std::string> metadata = {
      {"format", kFormat},
      {"model_identity", m.model_identity},
      {"tokens", std::to_string(m.tokens)},
      {"ctx", std::to_string(m.ctx)},
      {"windows", std::to_string(m.windows)},
      {"fisher", m.fisher ? "true" : "false"},
      {"calib_file", calib_file},
      {"shared_input", nlohmann::json(shared_input_).dump()}};
  // The safetensors header: tensors back to back in the order added, the JSON padded with spaces
  // so the data starts 8-byte aligned (as io/safetensors writes it).
  nlohmann::json j = nlohmann::json::object();
  j["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    j[e.name] = {{"dtype", e.f64 ? "F64" : "F32"}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
  }
  std::string header = j.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  AtomicFileWriter out(path_);
  out.write(len, 8);
  out.write(header);
  std::rewind(data_);
  std::vector<char> buf(size_t(16) << 20);
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), data_)) > 0;) out.write(buf.data(), n);
  check(!std::ferror(data_), path_, "cannot read back the temporary statistics");
  out.commit();
}

void save_calib_stats(const std::string& path, const CalibStats& s, const std::string& calib_file) {
  CalibStatsWriter w(path);
  w.add(s);
  w.commit(s, calib_file);
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
