// Test-side helpers of the CPU SIMT emulator: kernel test registry, per-order
// runner with launch-log checks, and the `__global__` source scan.
#include "tests/emu/emu_test.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace detnas::emu::test {

namespace {
std::set<std::string>& registry() {
  static std::set<std::string> names;
  return names;
}
}  // namespace

const std::set<std::string>& covered_kernels() { return registry(); }

std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string w; is >> w;) out.push_back(w);
  return out;
}

KernelTestRegistrar::KernelTestRegistrar(const char* kernels) {
  for (const std::string& k : split_names(kernels)) registry().insert(k);
}

void run_kernel_test(const char* kernels, KernelTestBody body) {
  const std::vector<std::string> names = split_names(kernels);
  for (ThreadOrder order : kAllOrders) {
    CAPTURE(std::string(order_name(order)));
    std::vector<int64_t> before;
    for (const std::string& k : names) before.push_back(launch_count(k, order));
    {
      ScopedThreadOrder scope(order, 12345);
      body(order);
    }
    for (size_t i = 0; i < names.size(); ++i)
      if (launch_count(names[i], order) == before[i])
        FAIL_CHECK("emu: the test registered for kernel " << names[i] << " never launched it in "
                                                          << std::string(order_name(order)) << " order");
  }
}

std::set<std::string> global_kernels_in(const std::string& src) {
  std::string code;  // comments and string literals blanked out
  code.reserve(src.size());
  for (size_t i = 0; i < src.size();) {
    if (src.compare(i, 2, "//") == 0) {
      while (i < src.size() && src[i] != '\n') ++i;
    } else if (src.compare(i, 2, "/*") == 0) {
      size_t e = src.find("*/", i + 2);
      i = e == std::string::npos ? src.size() : e + 2;
      code += ' ';
    } else if (src[i] == '"' || src[i] == '\'') {
      const char q = src[i];
      for (++i; i < src.size() && src[i] != q; ++i)
        if (src[i] == '\\') ++i;
      ++i;
      code += "\"\"";
    } else {
      code += src[i++];
    }
  }
  // __global__ [__launch_bounds__(...)] void [__launch_bounds__(...)] name (
  const size_t n = code.size();
  auto is_ident = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  auto skip_space = [&](size_t& i) {
    while (i < n && std::isspace(static_cast<unsigned char>(code[i]))) ++i;
  };
  auto word = [&](size_t& i) {
    skip_space(i);
    const size_t b = i;
    while (i < n && is_ident(code[i])) ++i;
    return code.substr(b, i - b);
  };
  auto word_after_bounds = [&](size_t& i) {
    std::string w = word(i);
    if (w != "__launch_bounds__") return w;
    skip_space(i);
    for (int depth = 0; i < n; ++i) {
      depth += code[i] == '(' ? 1 : code[i] == ')' ? -1 : 0;
      if (depth == 0) break;
    }
    ++i;
    return word(i);
  };
  std::set<std::string> names;
  const std::string key = "__global__";
  for (size_t p = code.find(key); p != std::string::npos; p = code.find(key, p + 1)) {
    size_t i = p + key.size();
    if ((p > 0 && is_ident(code[p - 1])) || (i < n && is_ident(code[i]))) continue;
    if (word_after_bounds(i) != "void") continue;
    const std::string name = word_after_bounds(i);
    skip_space(i);
    if (!name.empty() && i < n && code[i] == '(') names.insert(name);
  }
  return names;
}

std::map<std::string, std::string> find_global_kernels(const std::vector<std::string>& dirs) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> found;
  auto scan = [&](const fs::path& p) {
    if (p.extension() != ".cu") return;
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    for (const std::string& k : global_kernels_in(ss.str())) found.emplace(k, p.generic_string());
  };
  for (const std::string& d : dirs) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.is_directory()) {
        for (const auto& e2 : fs::directory_iterator(e.path()))
          if (e2.is_regular_file()) scan(e2.path());
      } else if (e.is_regular_file()) {
        scan(e.path());
      }
    }
  }
  return found;
}

}  // namespace detnas::emu::test
