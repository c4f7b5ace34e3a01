#include "calib/stats_file.h"

#include <ATen/ATen.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"

namespace rankrl {

namespace {

constexpr const char* kFormat = "rankrl-calib-stats-v1";

TensorBytes bytes_of(const std::string& name, const at::Tensor& t) {
  const DType d = t.scalar_type() == at::kDouble ? DType::F64 : DType::F32;
  return {name, d, t.sizes().vec(), std::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes())};
}

at::Tensor read_tensor(const SafetensorsFile& f, const std::string& name, DType want) {
  const TensorInfo* t = f.find(name);
  if (!t) return {};
  check(t->dtype == want, f.path(), "tensor " + quote_name(name) + " has dtype " + dtype_name(t->dtype) +
                                        ", expected " + dtype_name(want));
  at::Tensor out = at::empty(t->shape, want == DType::F64 ? at::kDouble : at::kFloat);
  std::memcpy(out.data_ptr(), f.data(*t), t->end - t->begin);
  return out;
}

std::string meta(const SafetensorsFile& f, const std::string& key) {
  auto it = f.header().metadata.find(key);
  check(it != f.header().metadata.end(), f.path(), "metadata entry '" + key + "' is missing");
  return it->second;
}

int64_t meta_int(const SafetensorsFile& f, const std::string& key) {
  try {
    return std::stoll(meta(f, key));
  } catch (const std::logic_error&) {
    throw Error(f.path(), "metadata entry '" + key + "' is not an integer");
  }
}

}  // namespace

void save_calib_stats(const std::string& path, const CalibStats& s, const std::string& calib_file) {
  std::vector<at::Tensor> keep;  // contiguous copies the byte views point into
  std::vector<TensorBytes> tensors;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    keep.push_back(t.contiguous());
    tensors.push_back(bytes_of(name, keep.back()));
  };
  nlohmann::json shared = nlohmann::json::object();
  for (const auto& [name, st] : s.stats) {
    const std::string& owner = s.shared_input.count(name) ? s.shared_input.at(name) : name;
    shared[name] = owner;
    if (owner == name) {
      add(name + ".gram", st.gram);
      add(name + ".abs_mean", st.abs_mean);
    }
    if (st.fisher.defined()) add(name + ".fisher", st.fisher);
  }
  write_safetensors(path, tensors,
                    {{"format", kFormat},
                     {"model_identity", s.model_identity},
                     {"tokens", std::to_string(s.tokens)},
                     {"ctx", std::to_string(s.ctx)},
                     {"windows", std::to_string(s.windows)},
                     {"fisher", s.fisher ? "true" : "false"},
                     {"calib_file", calib_file},
                     {"shared_input", shared.dump()}});
}

CalibStats load_calib_stats(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  check(meta(f, "format") == kFormat, path, "not a rankrl calibration statistics file");
  CalibStats s;
  s.model_identity = meta(f, "model_identity");
  s.tokens = meta_int(f, "tokens");
  s.ctx = meta_int(f, "ctx");
  s.windows = meta_int(f, "windows");
  s.fisher = meta(f, "fisher") == "true";
  nlohmann::json shared;
  try {
    shared = nlohmann::json::parse(meta(f, "shared_input"));
  } catch (const nlohmann::json::exception&) {
    throw Error(path, "metadata entry 'shared_input' is not valid JSON");
  }
  check(shared.is_object(), path, "metadata entry 'shared_input' is not a JSON object");
  for (const auto& [name, owner_j] : shared.items()) {
    check(owner_j.is_string(), path, "shared_input of " + quote_name(name) + " is not a string");
    const std::string owner = owner_j.get<std::string>();
    LinearStats st;
    st.gram = read_tensor(f, owner + ".gram", DType::F64);
    st.abs_mean = read_tensor(f, owner + ".abs_mean", DType::F32);
    st.fisher = read_tensor(f, name + ".fisher", DType::F32);
    check(st.gram.defined() && st.abs_mean.defined(), path, "no gram/abs_mean for " + quote_name(name));
    st.tokens = s.tokens;
    const int64_t n = st.gram.dim() == 2 ? st.gram.size(1) : -1;
    validate_stats(st, st.fisher.defined() ? st.fisher.size(0) : -1, n, path + ": " + name);
    s.stats[name] = st;
    s.shared_input[name] = owner;
  }
  return s;
}

}  // namespace rankrl
