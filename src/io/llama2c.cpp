// llama2.c legacy checkpoints (Karpathy's run.c format, version 0): a 7 x int32 header followed by
// float32 tensors stacked over layers. Loaded as zero-copy views under Hugging Face Llama names.
#include <ATen/ATen.h>

#include <cstring>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/checkpoint_detail.h"
#include "io/weight_roles.h"

namespace rankrl::detail {

namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);

struct Llama2cHeader {
  int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;
};

Llama2cHeader read_header(const MappedFile& map) {
  const std::string& path = map.path();
  check(map.size() >= kHeaderBytes, path,
        "file too short for a llama2.c header (" + std::to_string(map.size()) + " bytes, need 28)");
  int32_t raw[7];
  std::memcpy(raw, map.data(), kHeaderBytes);
  Llama2cHeader h{raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[5] > 0};
  // A negative vocab_size is llama2.c's flag for an unshared classifier.
  h.vocab_size = h.vocab_size < 0 ? -h.vocab_size : h.vocab_size;
  const std::string dims = "llama2.c header (dim " + std::to_string(h.dim) + ", hidden " +
                           std::to_string(h.hidden_dim) + ", layers " + std::to_string(h.n_layers) +
                           ", heads " + std::to_string(h.n_heads) + ", kv_heads " +
                           std::to_string(h.n_kv_heads) + ", vocab " + std::to_string(raw[5]) +
                           ", seq_len " + std::to_string(h.seq_len) + ")";
  check(h.dim > 0 && h.hidden_dim > 0 && h.n_layers > 0 && h.n_heads > 0 && h.n_kv_heads > 0 &&
            h.vocab_size > 0 && h.seq_len > 0,
        path, "invalid " + dims + ": every dimension must be positive");
  check(h.dim % h.n_heads == 0 && (h.dim / h.n_heads) % 2 == 0, path,
        "invalid " + dims + ": dim must split into heads of even size");
  check(h.n_heads % h.n_kv_heads == 0, path,
        "invalid " + dims + ": heads must be a multiple of kv_heads");
  return h;
}

// Number of floats the header implies, in the file's order (128-bit: a crafted header must not
// wrap around and match a small file).
unsigned __int128 expected_floats(const Llama2cHeader& h) {
  using u128 = unsigned __int128;
  const u128 d = h.dim, hid = h.hidden_dim, L = h.n_layers, V = h.vocab_size;
  const u128 kv = u128(h.dim) * h.n_kv_heads / h.n_heads;
  const u128 head_size = h.dim / h.n_heads;
  u128 n = V * d + L * (d + d * d + 2 * kv * d + d * d + d + 3 * hid * d) + d;
  n += 2 * u128(h.seq_len) * head_size / 2;  // the legacy RoPE tables
  if (!h.shared_classifier) n += V * d;
  return n;
}

void check_file_size(const MappedFile& map, const Llama2cHeader& h) {
  const unsigned __int128 expected = kHeaderBytes + 4 * expected_floats(h);
  auto str = [](unsigned __int128 v) {
    std::string s;
    do s.insert(s.begin(), char('0' + int(v % 10))); while ((v /= 10) != 0);
    return s;
  };
  check(expected <= map.size(), map.path(),
        "truncated llama2.c checkpoint: the header implies " + str(expected) + " bytes, the file has " +
            std::to_string(map.size()));
  check(expected == map.size(), map.path(),
        "llama2.c checkpoint has " + str(map.size() - expected) +
            " unexpected trailing bytes after the " + str(expected) + " the header implies");
}

// Hands out consecutive float32 views of the mapped file.
class Reader {
 public:
  explicit Reader(std::shared_ptr<MappedFile> map) : map_(std::move(map)) {}
  at::Tensor take(at::IntArrayRef shape) {
    at::Tensor t = mapped_f32(map_, map_->data() + offset_, shape);
    offset_ += 4 * static_cast<size_t>(t.numel());
    return t;
  }
  void skip_floats(int64_t n) { offset_ += 4 * static_cast<size_t>(n); }

 private:
  std::shared_ptr<MappedFile> map_;
  size_t offset_ = kHeaderBytes;
};

ModelConfig config_of(const Llama2cHeader& h) {
  ModelConfig c = llama_config({h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len});
  c.rope_interleaved = true;
  c.norm_eps = 1e-5;
  c.tie_embeddings = h.shared_classifier;
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

// Reads the stacked per-layer tensors in file order, naming each layer's slice by its role.
void read_weights(Reader& r, const ModelConfig& c, WeightMap& w) {
  const Arch a = Arch::Llama;
  auto shape_of = [&](Role role) { return role_shape(c, role_spec(a, role)); };
  w[tensor_name(a, Role::TokEmbed)] = r.take(shape_of(Role::TokEmbed));
  // llama2.c's file order: w1 = gate, w2 = down, w3 = up.
  for (Role role : {Role::AttnNorm, Role::Q, Role::K, Role::V, Role::O, Role::FfnNorm, Role::Gate, Role::Down,
                    Role::Up}) {
    std::vector<int64_t> shape = shape_of(role);
    shape.insert(shape.begin(), c.n_layers);
    at::Tensor all = r.take(shape);
    for (int64_t l = 0; l < c.n_layers; ++l) w[tensor_name(a, role, l)] = all.select(0, l);
  }
  w[tensor_name(a, Role::FinalNorm)] = r.take(shape_of(Role::FinalNorm));
  r.skip_floats(c.max_seq_len * c.head_dim);  // freq_cis_real + freq_cis_imag, unused
  if (!c.tie_embeddings) w[tensor_name(a, Role::LmHead)] = r.take(shape_of(Role::LmHead));
}

}  // namespace

Checkpoint load_llama2c(const std::string& path, const LoadOptions& options) {
  auto map = MappedFile::open(path);
  const Llama2cHeader h = read_header(*map);
  check_file_size(*map, h);
  Checkpoint ck;
  ck.config = config_of(h);
  ck.path = path;
  ck.format = "llama2c";
  ck.files = {path};
  Reader reader(map);
  read_weights(reader, ck.config, ck.weights);
  validate_weights(ck.config, ck.weights, path, options.check_values);
  for (const auto& [name, t] : ck.weights) {
    ck.stored_dtypes[name] = DType::F32;
    ck.stored_bytes += 4 * static_cast<uint64_t>(t.numel());
  }
  return ck;
}

}  // namespace rankrl::detail
