// Small filesystem helpers for data/, checkpoints and results: mkdir -p, sorted
// folder listings, whole-file reads and atomic writes (temporary file in the same
// folder, fsync, rename, fsync of the folder). Every failure throws detnas::Error
// naming the path and the system's reason. Not a general path library: paths are
// plain '/'-separated std::strings.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace detnas {

// Creates `path` and any missing parents; no error if it already exists as a folder.
void make_dirs(const std::string& path);

bool path_exists(const std::string& path);  // anything (file, folder, link target)
bool file_exists(const std::string& path);  // a regular file (following links)
bool dir_exists(const std::string& path);   // a folder (following links)
// True when `path` does not exist or is a folder with no entries.
bool dir_missing_or_empty(const std::string& path);

enum class ListFilter { All, Files, Dirs };
// Entry names (not paths) of a folder, without "." and "..", sorted by byte value
// so the order is the same on every machine and locale. Hidden entries (leading
// '.') are skipped unless ListHidden::Include.
enum class ListHidden { Skip, Include };
std::vector<std::string> list_dir(const std::string& path, ListFilter filter = ListFilter::All,
                                  ListHidden hidden = ListHidden::Skip);

// Whole file as bytes in a std::string.
std::string read_file(const std::string& path);

// Whether an atomic write also fsyncs. Sync is the default for anything a user
// keeps (checkpoints, results); NoSync still renames atomically (readers never
// see a partial file) but skips the flush to disk, for bulk generated data.
enum class Durability { Sync, NoSync };

// Writes `size` bytes to `path` so that `path` is either the old file or the
// complete new one: writes "<path>.tmp.<pid>.<n>" in the same folder, fsyncs it,
// renames it over `path`, then fsyncs the folder. The temporary file is removed
// on failure.
void write_file_atomic(const std::string& path, const void* data, size_t size,
                       Durability durability = Durability::Sync);
inline void write_file_atomic(const std::string& path, std::string_view bytes,
                              Durability durability = Durability::Sync) {
  write_file_atomic(path, bytes.data(), bytes.size(), durability);
}

// Removes the temporary files that write_file_atomic leaves in folder `dir` when
// its process dies mid-write ("NAME.tmp.PID.N" whose PID is no running process;
// a live writer's files are kept). Returns how many were removed; a missing
// folder has none.
int64_t remove_stale_temporaries(const std::string& dir);

// Recursively removes `path` (file or folder); no error if it does not exist.
void remove_all(const std::string& path);

// "a" + "/" + "b" without doubling the separator; an empty side returns the other.
std::string path_join(std::string_view a, std::string_view b);
std::string path_filename(std::string_view path);  // part after the last '/'
std::string path_parent(std::string_view path);    // part before the last '/', "." if none
// Lower-case extension with the dot (".jpg"), or "" when there is none.
std::string path_extension(std::string_view path);

}  // namespace detnas
