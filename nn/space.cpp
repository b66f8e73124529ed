// The built-in search spaces, block descriptions and architecture parsing /
// validation / formatting. No modules and no cost model here.
#include "nn/space.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace detnas::nn {

namespace {

std::string join(const std::vector<int64_t>& v) {
  std::ostringstream os;
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

const std::vector<SearchSpace>& builtin_spaces() {
  // Widths and block counts from DETNAS.md; "tiny" is documented in space.h.
  static const std::vector<SearchSpace> spaces = [] {
    std::vector<SearchSpace> s;
    s.push_back({"300M", 16, {4, 4, 8, 4}, {64, 160, 320, 640}, 1024, kNumChoices});
    s.push_back({"1.3G", 48, {8, 8, 16, 8}, {96, 240, 480, 960}, 1024, kNumChoices});
    s.push_back({"3.8G", 72, {8, 8, 16, 8}, {172, 432, 864, 1728}, 1728, kNumChoices});
    s.push_back({"tiny", 16, {2, 2, 4, 2}, {32, 64, 128, 256}, 512, kNumChoices});
    for (const auto& sp : s) sp.validate();
    return s;
  }();
  return spaces;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Position of block `i` as "stage S block B" (1-based stage, 0-based block, as in
// parameter names like stage2.3).
std::string block_position(const SearchSpace& space, int64_t i) {
  int64_t acc = 0;
  for (size_t s = 0; s < space.stage_blocks.size(); ++s) {
    if (i < acc + space.stage_blocks[s]) return detail::cat("stage ", s + 1, " block ", i - acc);
    acc += space.stage_blocks[s];
  }
  return "beyond the last block";
}

}  // namespace

BlockKind choice_kind(int choice) {
  DETNAS_CHECK(choice >= 0 && choice < kNumChoices, "choice_kind: choice ", choice,
               " is not one of 0..3 (0,1,2 = ShuffleNetV2 k3/k5/k7, 3 = Xception)");
  return choice == 3 ? BlockKind::Xception : BlockKind::Shuffle;
}

int choice_kernel(int choice) {
  static const int k[kNumChoices] = {3, 5, 7, 3};
  DETNAS_CHECK(choice >= 0 && choice < kNumChoices, "choice_kernel: choice ", choice,
               " is not one of 0..3 (0,1,2 = ShuffleNetV2 k3/k5/k7, 3 = Xception)");
  return k[choice];
}

std::string choice_name(int choice) {
  static const char* n[kNumChoices] = {"shuffle_k3", "shuffle_k5", "shuffle_k7", "xception"};
  DETNAS_CHECK(choice >= 0 && choice < kNumChoices, "choice_name: choice ", choice, " is not one of 0..3");
  return n[choice];
}

int64_t SearchSpace::total_blocks() const {
  int64_t n = 0;
  for (int64_t b : stage_blocks) n += b;
  return n;
}

void SearchSpace::validate() const {
  DETNAS_CHECK(stage_blocks.size() == size_t(kNumStages) && stage_widths.size() == size_t(kNumStages), "search space ",
               name, ": needs ", kNumStages, " stages, got ", stage_blocks.size(), " block counts and ",
               stage_widths.size(), " widths");
  DETNAS_CHECK(num_choices == kNumChoices, "search space ", name, ": num_choices is ", num_choices, ", only ",
               kNumChoices, " (ShuffleNetV2 k3/k5/k7, Xception) are defined");
  DETNAS_CHECK(stem > 0 && last_conv > 0, "search space ", name, ": stem (", stem, ") and last conv (", last_conv,
               ") must be positive");
  int64_t in = stem;
  for (int s = 0; s < kNumStages; ++s) {
    DETNAS_CHECK(stage_blocks[s] >= 1, "search space ", name, ": stage ", s + 1, " has ", stage_blocks[s],
                 " blocks (needs >= 1)");
    int64_t w = stage_widths[s];
    DETNAS_CHECK(w % 2 == 0, "search space ", name, ": stage ", s + 1, " width ", w,
                 " is odd (the channel split needs an even width)");
    DETNAS_CHECK(w > in, "search space ", name, ": stage ", s + 1, " width ", w, " must exceed its input width ", in,
                 " (the stride-2 main branch produces width - input channels)");
    in = w;
  }
}

std::string SearchSpace::describe() const {
  return detail::cat(name, ": stem ", stem, ", blocks ", join(stage_blocks), " (", total_blocks(), "), widths ",
                     join(stage_widths), ", last conv ", last_conv);
}

const SearchSpace& space_by_name(const std::string& name) {
  for (const auto& s : builtin_spaces())
    if (s.name == name) return s;
  std::string valid;
  for (const auto& n : space_names()) valid += (valid.empty() ? "" : ", ") + n;
  DETNAS_FAIL("unknown search space '", name, "' (valid: ", valid, ")");
}

std::vector<std::string> space_names() {
  std::vector<std::string> names;
  for (const auto& s : builtin_spaces()) names.push_back(s.name);
  return names;
}

std::vector<BlockSpec> blocks(const SearchSpace& space) {
  space.validate();
  std::vector<BlockSpec> out;
  out.reserve(size_t(space.total_blocks()));
  int64_t in = space.stem;
  int index = 0;
  for (int s = 0; s < kNumStages; ++s) {
    const int64_t w = space.stage_widths[s];
    for (int b = 0; b < space.stage_blocks[s]; ++b) {
      BlockSpec bs;
      bs.index = index++;
      bs.stage = s;
      bs.index_in_stage = b;
      bs.out_channels = w;
      bs.mid_channels = w / 2;
      if (b == 0) {
        bs.stride = 2;
        bs.in_channels = in;
        bs.main_in = in;
        bs.main_out = w - in;
        bs.proj_channels = in;
      } else {
        bs.stride = 1;
        bs.in_channels = w;
        bs.main_in = w / 2;
        bs.main_out = w / 2;
        bs.proj_channels = 0;
      }
      out.push_back(bs);
    }
    in = w;
  }
  return out;
}

Arch parse_arch(const std::string& text) {
  std::string body = trim(text);
  DETNAS_CHECK(!body.empty(), "architecture: empty text (expected e.g. 2,1,2,0 or [2,1,2,0])");
  if (body.front() == '[' || body.back() == ']') {
    DETNAS_CHECK(body.front() == '[' && body.back() == ']', "architecture: unbalanced brackets in '",
                 printable_excerpt(body, 60), "'");
    body = trim(body.substr(1, body.size() - 2));
    if (body.empty()) return {};
  }
  Arch arch;
  size_t start = 0;
  while (true) {
    size_t comma = body.find(',', start);
    std::string tok = trim(body.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    size_t pos = arch.size();
    DETNAS_CHECK(!tok.empty(), "architecture: position ", pos, " is empty (stray comma?) in '",
                 printable_excerpt(text, 60), "'");
    size_t i = (tok[0] == '-' || tok[0] == '+') ? 1 : 0;
    bool digits = i < tok.size() && tok.size() - i <= 9;
    for (size_t j = i; digits && j < tok.size(); ++j) digits = std::isdigit(static_cast<unsigned char>(tok[j])) != 0;
    DETNAS_CHECK(digits, "architecture: position ", pos, ": bad value '", printable_excerpt(tok, 20),
                 "' (expected an integer choice 0..3)");
    arch.push_back(std::stoi(tok));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return arch;
}

Arch read_arch_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  DETNAS_CHECK(f.good(), "architecture file '", path, "': cannot open");
  // A choice list is a few hundred bytes; reading at most 1 MiB keeps a device
  // such as /dev/zero from being read forever.
  constexpr size_t kMaxBytes = size_t(1) << 20;
  std::string text(kMaxBytes + 1, '\0');
  f.read(text.data(), std::streamsize(text.size()));
  text.resize(size_t(f.gcount()));
  DETNAS_CHECK(text.size() <= kMaxBytes, "architecture file '", path, "': more than ", kMaxBytes,
               " bytes, not a choice list");
  try {
    return parse_arch(text);
  } catch (const Error& e) {
    DETNAS_FAIL("architecture file '", path, "': ", e.message());
  }
}

void validate_arch(const SearchSpace& space, const Arch& arch) {
  const int64_t n = space.total_blocks();
  DETNAS_CHECK(int64_t(arch.size()) == n, "architecture has ", arch.size(), " choices but space ", space.name, " has ",
               n, " blocks (", join(space.stage_blocks), " per stage)");
  for (size_t i = 0; i < arch.size(); ++i)
    DETNAS_CHECK(arch[i] >= 0 && arch[i] < space.num_choices, "architecture: position ", i, " (",
                 block_position(space, int64_t(i)), ") has choice ", arch[i], ", valid choices are 0..",
                 space.num_choices - 1, " (0,1,2 = ShuffleNetV2 k3/k5/k7, 3 = Xception)");
}

std::string format_arch(const Arch& arch) {
  std::ostringstream os;
  for (size_t i = 0; i < arch.size(); ++i) os << (i ? "," : "") << arch[i];
  return os.str();
}

std::string format_arch_json(const Arch& arch) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < arch.size(); ++i) os << (i ? ", " : "") << arch[i];
  os << ']';
  return os.str();
}

Arch uniform_arch(const SearchSpace& space, int choice) {
  DETNAS_CHECK(choice >= 0 && choice < space.num_choices, "uniform_arch: choice ", choice, " is not one of 0..",
               space.num_choices - 1);
  return Arch(size_t(space.total_blocks()), choice);
}

}  // namespace detnas::nn
