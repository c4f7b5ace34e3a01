// safetensors reader/writer. Torch-free on purpose: the fuzz targets link this file alone.
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace rankrl {

using nlohmann::json;

namespace {

// Headers of real checkpoints are a few MB at most; anything bigger is corruption or an attack.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeEntry& entry(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e;
  throw Error("", "internal: unknown DType");
}

uint64_t read_u64_le(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses the JSON text, rejecting duplicate top-level keys (nlohmann would silently keep the last
// one, and a second entry for a name is a sign of a corrupt or crafted file).
json parse_json_object(std::string_view text, const std::string& path) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    throw Error(path, std::string("safetensors header is not valid JSON: ") + e.what());
  }
  check(j.is_object(), path, "safetensors header is not a JSON object");
  check(duplicate.empty(), path, "safetensors header names tensor " + quote_name(duplicate) + " twice");
  return j;
}

std::vector<int64_t> parse_shape(const json& shape, const std::string& where, const std::string& path) {
  check(shape.is_array(), path, where + ": 'shape' must be an array of integers");
  std::vector<int64_t> dims;
  for (const auto& d : shape) {
    check(d.is_number_integer(), path, where + ": 'shape' must be an array of integers");
    check(!d.is_number_unsigned() || d.get<uint64_t>() <= uint64_t(INT64_MAX), path,
          where + ": dimension too large");
    int64_t v = d.get<int64_t>();
    check(v >= 0, path, where + ": negative dimension " + std::to_string(v));
    dims.push_back(v);
  }
  return dims;
}

std::pair<uint64_t, uint64_t> parse_offsets(const json& offsets, const std::string& where,
                                            const std::string& path) {
  const std::string what = where + ": 'data_offsets' must be two non-negative integers";
  check(offsets.is_array() && offsets.size() == 2, path, what);
  for (const auto& o : offsets) check(o.is_number_unsigned(), path, what);
  return {offsets[0].get<uint64_t>(), offsets[1].get<uint64_t>()};
}

// Byte size of a tensor, or an error when numel * element size overflows 64 bits.
uint64_t tensor_bytes(const TensorInfo& t, const std::string& where, const std::string& path) {
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape)
    check(!__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n), path,
          where + ": element count overflows");
  return n;
}

TensorInfo parse_tensor(const std::string& name, const json& e, uint64_t buffer_size,
                        const std::string& path) {
  const std::string where = "tensor " + quote_name(name);
  check(e.is_object(), path, where + ": entry is not a JSON object");
  check(e.contains("dtype") && e["dtype"].is_string(), path, where + ": missing string 'dtype'");
  check(e.contains("shape"), path, where + ": missing 'shape'");
  check(e.contains("data_offsets"), path, where + ": missing 'data_offsets'");
  TensorInfo t;
  t.name = name;
  const auto& dtype = e["dtype"].get_ref<const std::string&>();
  auto parsed = dtype_from_name(dtype);
  check(parsed.has_value(), path, where + ": unknown dtype " + quote_name(dtype));
  t.dtype = *parsed;
  t.shape = parse_shape(e["shape"], where, path);
  std::tie(t.begin, t.end) = parse_offsets(e["data_offsets"], where, path);
  check(t.begin <= t.end, path, where + ": data_offsets begin " + std::to_string(t.begin) +
                                    " > end " + std::to_string(t.end));
  check(t.end <= buffer_size, path,
        where + ": data_offsets end " + std::to_string(t.end) + " is past the data buffer (" +
            std::to_string(buffer_size) + " bytes)");
  uint64_t bytes = tensor_bytes(t, where, path);
  check(bytes == t.end - t.begin, path,
        where + ": shape " + shape_string(t.shape) + " of " + dtype + " needs " +
            std::to_string(bytes) + " bytes but data_offsets span " +
            std::to_string(t.end - t.begin));
  return t;
}

std::map<std::string, std::string> parse_metadata(const json& m, const std::string& path) {
  check(m.is_object(), path, "__metadata__ is not a JSON object");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : m.items()) {
    check(v.is_string(), path, "__metadata__ value for " + quote_name(k) + " is not a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

// Sorted by begin; a tensor overlaps when it starts before the furthest end seen so far (empty
// tensors occupy no bytes and cannot overlap anything).
void check_no_overlap(const std::vector<TensorInfo>& sorted, const std::string& path) {
  const TensorInfo* furthest = nullptr;
  for (const auto& t : sorted) {
    if (t.begin == t.end) continue;
    if (furthest && t.begin < furthest->end)
      throw Error(path, "tensors " + quote_name(furthest->name) + " and " + quote_name(t.name) +
                            " overlap in the data buffer");
    if (!furthest || t.end > furthest->end) furthest = &t;
  }
}

}  // namespace

const char* dtype_name(DType d) { return entry(d).name; }

std::string quote_name(std::string_view name) {
  static const char* const kHex = "0123456789abcdef";
  std::string out = "'";
  for (unsigned char ch : name) {
    if (ch < 0x20 || ch == 0x7f) {
      out += "\\x";
      out += kHex[ch >> 4];
      out += kHex[ch & 15];
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "'";
}
size_t dtype_size(DType d) { return entry(d).size; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view bytes, const std::string& path) {
  check(bytes.size() >= 8, path,
        "file too short for a safetensors header (" + std::to_string(bytes.size()) +
            " bytes, need at least 8)");
  const uint64_t n = read_u64_le(bytes.data());
  check(n <= kMaxHeaderBytes, path,
        "safetensors header length " + std::to_string(n) + " is absurd (limit 100 MB)");
  check(n <= bytes.size() - 8, path,
        "safetensors header length " + std::to_string(n) + " runs past the end of the file (" +
            std::to_string(bytes.size()) + " bytes)");
  const json j = parse_json_object(bytes.substr(8, n), path);

  SafetensorsHeader h;
  h.data_start = 8 + n;
  const uint64_t buffer_size = bytes.size() - h.data_start;
  for (const auto& [name, e] : j.items()) {
    if (name == "__metadata__")
      h.metadata = parse_metadata(e, path);
    else
      h.tensors.push_back(parse_tensor(name, e, buffer_size, path));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_no_overlap(h.tensors, path);
  return h;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.map_ = MappedFile::open(path);
  std::string_view bytes(reinterpret_cast<const char*>(f.map_->data()), f.map_->size());
  f.header_ = parse_safetensors_header(bytes, path);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i) f.index_[f.header_.tensors[i].name] = i;
  return f;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

namespace {

// JSON header for `tensors` laid out back to back, padded with spaces so the data buffer starts
// at an 8-byte aligned file offset (lets readers view F32/F64 data in place).
// `sizes`: each tensor's byte count, or nullopt to take it from its shape (streamed writes).
std::string header_json(const std::vector<TensorBytes>& tensors, bool check_bytes,
                        const std::map<std::string, std::string>& metadata, const std::string& path) {
  json j = json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    check(t.name != "__metadata__" && !j.contains(t.name), path,
          "cannot write: tensor name " + quote_name(t.name) + " is reserved or repeated");
    TensorInfo info{t.name, t.dtype, t.shape, 0, 0};
    uint64_t expected = tensor_bytes(info, "tensor " + quote_name(t.name), path);
    check(!check_bytes || expected == t.bytes.size(), path,
          "cannot write tensor " + quote_name(t.name) + ": shape " + shape_string(t.shape) + " needs " +
              std::to_string(expected) + " bytes, got " + std::to_string(t.bytes.size()));
    j[t.name] = {{"dtype", dtype_name(t.dtype)},
                 {"shape", t.shape},
                 {"data_offsets", {offset, offset + expected}}};
    offset += expected;
  }
  std::string text;
  try {
    text = j.dump();
  } catch (const json::exception& e) {
    throw Error(path, std::string("cannot write header: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_header(AtomicFileWriter& out, const std::string& header) {
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(header);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = header_json(tensors, /*check_bytes=*/true, metadata, path);
  AtomicFileWriter out(path);
  write_header(out, header);
  for (const auto& t : tensors) out.write(t.bytes);
  out.commit();
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorBytes> layout,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), layout_(std::move(layout)) {
  const std::string header = header_json(layout_, /*check_bytes=*/false, metadata, path_);
  out_ = std::make_unique<AtomicFileWriter>(path_);
  write_header(*out_, header);
}

SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write_next(std::string_view bytes) {
  check(next_ < layout_.size(), path_, "cannot write: every tensor of the header is written already");
  const TensorBytes& t = layout_[next_];
  TensorInfo info{t.name, t.dtype, t.shape, 0, 0};
  check(bytes.size() == tensor_bytes(info, "tensor " + quote_name(info.name), path_), path_,
        "cannot write tensor " + quote_name(info.name) + ": got " + std::to_string(bytes.size()) +
            " bytes, its shape needs another count");
  out_->write(bytes);
  ++next_;
}

void SafetensorsWriter::commit() {
  check(next_ == layout_.size(), path_, "cannot finish: " + std::to_string(layout_.size() - next_) +
                                            " tensor(s) of the header were not written");
  out_->commit();
}

void write_safetensors_streamed(const std::string& path, const std::vector<TensorBytes>& layout,
                                const std::function<std::string(size_t)>& bytes_of,
                                const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter out(path, layout, metadata);
  for (size_t i = 0; i < layout.size(); ++i) out.write_next(bytes_of(i));
  out.commit();
}

}  // namespace rankrl
