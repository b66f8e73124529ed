// Filesystem helpers (see fs.h). POSIX calls for the atomic write (open/write/
// fsync/rename) so the durability steps are explicit; std::filesystem for the rest.
#include "runtime/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "runtime/fault.h"

namespace detnas {
namespace stdfs = std::filesystem;

namespace {
std::string errno_str(int e) { return std::strerror(e); }
}  // namespace

void make_dirs(const std::string& path) {
  DETNAS_CHECK(!path.empty(), "make_dirs: empty path");
  std::error_code ec;
  stdfs::create_directories(path, ec);
  if (ec) {
    // create_directories reports an error when the path exists as a folder via a
    // link on some library versions; accept any existing folder.
    if (dir_exists(path)) return;
    DETNAS_FAIL("make_dirs: cannot create folder '", path, "': ", ec.message());
  }
  DETNAS_CHECK(dir_exists(path), "make_dirs: '", path, "' exists and is not a folder");
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool dir_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool dir_missing_or_empty(const std::string& path) {
  if (!path_exists(path)) return true;
  if (!dir_exists(path)) return false;
  std::error_code ec;
  auto it = stdfs::directory_iterator(path, ec);
  DETNAS_CHECK(!ec, "cannot list folder '", path, "': ", ec.message());
  return it == stdfs::directory_iterator();
}

std::vector<std::string> list_dir(const std::string& path, ListFilter filter, ListHidden hidden) {
  DETNAS_CHECK(dir_exists(path), "list_dir: '", path, "' is not a folder (",
               path_exists(path) ? "exists but is not a folder" : "does not exist", ")");
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = stdfs::directory_iterator(path, ec); !ec && it != stdfs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (hidden == ListHidden::Skip && !name.empty() && name[0] == '.') continue;
    if (filter != ListFilter::All) {
      std::error_code ec2;
      bool is_dir = stdfs::is_directory(it->path(), ec2);  // follows links
      bool is_file = stdfs::is_regular_file(it->path(), ec2);
      if (filter == ListFilter::Dirs && !is_dir) continue;
      if (filter == ListFilter::Files && !is_file) continue;
    }
    names.push_back(std::move(name));
  }
  DETNAS_CHECK(!ec, "list_dir: cannot list folder '", path, "': ", ec.message());
  std::sort(names.begin(), names.end());  // std::string compares bytes: locale-free
  return names;
}

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    DETNAS_FAIL("cannot open file '", path, "': ", errno_str(e));
  }
  std::string out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    DETNAS_FAIL("cannot read '", path, "': it is a folder");
  }
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(size_t(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      DETNAS_FAIL("error reading file '", path, "': ", errno_str(e));
    }
    if (r == 0) break;
    out.append(buf, size_t(r));
  }
  ::close(fd);
  return out;
}

void write_file_atomic(const std::string& path, const void* data, size_t size, Durability durability) {
  DETNAS_CHECK(!path.empty(), "write_file_atomic: empty path");
  static std::atomic<uint64_t> counter{0};
  const std::string name = path_filename(path);  // fault points (runtime/fault.h) match on it
  fault_point("atomic.begin", name);
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    DETNAS_FAIL("cannot create temporary file '", tmp, "' for '", path, "': ", errno_str(e));
  }
  auto fail = [&](const char* what, int e) {
    ::close(fd);
    ::unlink(tmp.c_str());
    DETNAS_FAIL("cannot write '", path, "' (", what, " of temporary file '", tmp, "'): ", errno_str(e));
  };
  if (Fault f = fault_point("write", name); f.kind == FaultKind::Errno) fail("write", f.err);
  auto write_all = [&](const char* p, size_t left) {
    while (left > 0) {
      ssize_t w = ::write(fd, p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("write", errno);
      }
      p += w;
      left -= size_t(w);
    }
  };
  // In two halves so that a test can kill the process with the temporary file torn.
  write_all(static_cast<const char*>(data), size / 2);
  fault_point("atomic.mid", name);
  write_all(static_cast<const char*>(data) + size / 2, size - size / 2);
  if (durability == Durability::Sync && ::fsync(fd) != 0) fail("fsync", errno);
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    DETNAS_FAIL("cannot write '", path, "' (close of temporary file '", tmp, "'): ", errno_str(e));
  }
  fault_point("atomic.before_rename", name);
  const Fault rename_fault = fault_point("rename", name);
  if (rename_fault.kind == FaultKind::Errno || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = rename_fault.kind == FaultKind::Errno ? rename_fault.err : errno;
    ::unlink(tmp.c_str());
    DETNAS_FAIL("cannot rename '", tmp, "' to '", path, "': ", errno_str(e));
  }
  fault_point("atomic.after_rename", name);
  if (durability == Durability::Sync) {
    // Make the rename itself durable. Failure here leaves a complete file, so it
    // is not an error (some filesystems refuse fsync on folders).
    int dfd = ::open(path_parent(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }
}

int64_t remove_stale_temporaries(const std::string& dir) {
  if (!dir_exists(dir)) return 0;
  int64_t removed = 0;
  for (const std::string& name : list_dir(dir, ListFilter::Files, ListHidden::Include)) {
    // NAME.tmp.PID.N, as write_file_atomic names them.
    const size_t dot_n = name.rfind('.');
    if (dot_n == std::string::npos || dot_n == 0) continue;
    const size_t dot_pid = name.rfind('.', dot_n - 1);
    if (dot_pid == std::string::npos || dot_pid < 4 || name.compare(dot_pid - 4, 4, ".tmp") != 0) continue;
    const std::string pid_s = name.substr(dot_pid + 1, dot_n - dot_pid - 1), n_s = name.substr(dot_n + 1);
    auto digits = [](const std::string& s) {
      return !s.empty() && s.size() < 12 &&
             std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (!digits(pid_s) || !digits(n_s)) continue;
    const pid_t pid = pid_t(std::stoll(pid_s));
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno == EPERM) continue;  // its writer may still be running
    const std::string path = path_join(dir, name);
    if (::unlink(path.c_str()) == 0) ++removed;
  }
  return removed;
}

void remove_all(const std::string& path) {
  std::error_code ec;
  stdfs::remove_all(path, ec);
  DETNAS_CHECK(!ec, "cannot remove '", path, "': ", ec.message());
}

std::string path_join(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  std::string out(a);
  if (out.back() != '/') out += '/';
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  out += b;
  return out;
}

std::string path_filename(std::string_view path) {
  size_t k = path.find_last_of('/');
  return std::string(k == std::string_view::npos ? path : path.substr(k + 1));
}

std::string path_parent(std::string_view path) {
  size_t k = path.find_last_of('/');
  if (k == std::string_view::npos) return ".";
  if (k == 0) return "/";
  return std::string(path.substr(0, k));
}

std::string path_extension(std::string_view path) {
  std::string name = path_filename(path);
  size_t k = name.find_last_of('.');
  if (k == std::string::npos || k == 0) return "";
  std::string ext = name.substr(k);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

}  // namespace detnas
