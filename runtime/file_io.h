// Small file helpers used by every layer that writes results: atomic writes
// (temporary file in the same folder, fsync, rename) so a crash never leaves a
// half-written checkpoint, and whole-file reads with errors naming the path.
#pragma once
#include <string>

namespace detnas {

// Writes `bytes` to `path` atomically; creates no folders.
void write_file_atomic(const std::string& path, const std::string& bytes);
// Reads the whole file; throws detnas::Error naming the path on failure.
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace detnas
