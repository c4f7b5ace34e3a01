#include "core/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/dist.h"
#include "core/error.h"
#include "core/utf8.h"

namespace rankrl {

std::string read_file(const std::string& path) {
  if (is_directory(path)) throw Error(path, "is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path, "read failed");
  return ss.str();
}

std::string read_text_file(const std::string& path) {
  std::string text = read_file(path);
  require_utf8(text, path);
  return text;
}

namespace {
int open_lock_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path, std::string("cannot open lock file: ") + std::strerror(errno));
  return fd;
}
}  // namespace

// Under mpirun rank 0 alone writes, so it alone holds locks: the other ranks get a lock that holds
// no file (fd -1) and touch nothing.
std::unique_ptr<FileLock> FileLock::try_acquire(const std::string& path) {
  if (!dist::is_root()) return std::unique_ptr<FileLock>(new FileLock(-1));
  const int fd = open_lock_file(path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

std::unique_ptr<FileLock> FileLock::acquire(const std::string& path) {
  if (!dist::is_root()) return std::unique_ptr<FileLock>(new FileLock(-1));
  const int fd = open_lock_file(path);
  while (::flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) {
      ::close(fd);
      throw Error(path, std::string("cannot lock: ") + std::strerror(errno));
    }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}  // closing the descriptor releases the flock

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  if (is_directory(path)) throw Error(path, "is a directory, expected a file");
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(path, "cannot stat");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw Error(path, std::string("mmap failed: ") + std::strerror(errno));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  if (!dist::is_root()) return;
  AtomicFileWriter w(path);
  w.write(bytes);
  w.commit();
}

AtomicFileWriter::AtomicFileWriter(std::string path)
    : path_(std::move(path)), tmp_path_(path_ + ".tmp." + std::to_string(::getpid())) {
  if (!dist::is_root()) return;  // the other ranks' writes go nowhere (see dist.h)
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw Error(path_, std::string("cannot write: ") + std::strerror(errno));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
}

void AtomicFileWriter::write(const void* data, size_t n) {
  if (!file_) return;  // not rank 0
  if (n > 0 && std::fwrite(data, 1, n, file_) != n)
    throw Error(path_, std::string("write failed: ") + std::strerror(errno));
}

void AtomicFileWriter::commit() {
  if (!file_) return;  // not rank 0 (or committed already)
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok || std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_path_.c_str());
    throw Error(path_, std::string("cannot finish writing: ") + std::strerror(errno));
  }
}

}  // namespace rankrl
