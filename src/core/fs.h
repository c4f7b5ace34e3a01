// File helpers: whole-file reads, read-only memory maps and atomic writes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace rankrl {

// Reads a whole file; throws Error(path, ...) when it is missing or unreadable.
std::string read_file(const std::string& path);

// The one input check for text files (calibration, held-out, perplexity, corpora): a readable
// file of valid UTF-8. Throws Error(path, "not valid UTF-8 (byte N)") otherwise.
std::string read_text_file(const std::string& path);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

// A read-only memory map of a whole file. Shared so that tensors viewing the map keep it alive.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Writes `bytes` to `path.tmp.<pid>` then renames over `path`, so readers never see a partial
// file. Creates no directories. Under mpirun only rank 0 writes (here, in AtomicFileWriter and
// FileLock): the other ranks' calls do nothing.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Streams into a temporary file next to `path`; commit() renames it into place. If the writer is
// destroyed without commit() (an exception unwound past it) the temporary is removed.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
};

// An advisory exclusive lock (flock) on `path`, created if missing, held until destruction.
// Guards a directory that one run owns against a second writer.
class FileLock {
 public:
  // Returns nullptr when another process holds the lock (throws Error when `path` can't be opened).
  static std::unique_ptr<FileLock> try_acquire(const std::string& path);
  // Waits for the lock.
  static std::unique_ptr<FileLock> acquire(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace rankrl
