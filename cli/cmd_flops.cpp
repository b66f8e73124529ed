// `detnas flops`: multiply-adds and parameters of one architecture in a search
// space (backbone only, with the classification head, and per stage), from the
// analytic cost model. Prints a table or, with --json, one JSON object.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cli/command.h"
#include "cli/option_checks.h"
#include "core/error.h"
#include "nn/space.h"
#include "search/cost_model.h"
#include "search/latency.h"

namespace detnas::cli {
namespace {

struct FlopsOptions {
  std::string space = "300M";
  std::string arch;
  std::string input = "224";
  int64_t classes = 1000;
  bool no_head_bias = false;
  bool json = false;
  std::string latency_table;
};

// "--arch" is either a file holding the list or the list itself.
nn::Arch load_arch(const std::string& arg) {
  std::ifstream probe(arg);
  if (probe.good()) return nn::read_arch_file(arg);
  // Something that looks like a path: report the missing file.
  auto ends_with = [&](const char* ext) {
    const std::string e(ext);
    return arg.size() >= e.size() && arg.compare(arg.size() - e.size(), e.size(), e) == 0;
  };
  if (arg.find('/') != std::string::npos || ends_with(".json") || ends_with(".txt")) return nn::read_arch_file(arg);
  try {
    return nn::parse_arch(arg);
  } catch (const Error& e) {
    // A list with a bad entry ("2,1,x") is named by parse_arch; a lone word may be a missing file.
    if (arg.find_first_of(",[") != std::string::npos) throw;
    DETNAS_FAIL("flops: --arch '", arg, "' is neither a file nor a choice list (", e.message(), ")");
  }
}

// "--input 224" or "--input 800x1333" (height x width).
void parse_input(const std::string& s, int64_t& h, int64_t& w) {
  auto to_int = [&](const std::string& t) -> int64_t {
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(t, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    DETNAS_CHECK(used == t.size() && !t.empty() && v >= 1 && v <= 100000, "flops: --input '", s,
                 "' is not a size (expected e.g. 224 or 800x1333)");
    return v;
  };
  size_t x = s.find('x');
  if (x == std::string::npos) {
    h = w = to_int(s);
  } else {
    h = to_int(s.substr(0, x));
    w = to_int(s.substr(x + 1));
  }
}

std::string mega(int64_t v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, double(v) * 1e-6);
  return buf;
}

void print_table(const nn::SearchSpace& sp, const nn::Arch& arch, const search::ArchCost& c, int64_t h, int64_t w,
                 const FlopsOptions& o) {
  std::printf("space  %s\n", sp.describe().c_str());
  std::printf("arch   %s\n", nn::format_arch(arch).c_str());
  std::printf("input  1x3x%lldx%lld\n\n", (long long)h, (long long)w);
  std::printf("%-22s %-18s %12s %12s\n", "part", "output (CxHxW)", "MACs (M)", "params (M)");
  auto row = [](const std::string& name, const std::string& shape, const search::Cost& k) {
    std::printf("%-22s %-18s %12s %12s\n", name.c_str(), shape.c_str(), mega(k.macs, 2).c_str(),
                mega(k.params, 4).c_str());
  };
  auto shape = [](int64_t C, int64_t H, int64_t W) { return detail::cat(C, "x", H, "x", W); };
  row("stem", shape(sp.stem, search::conv_out_size(h, 3, 2), search::conv_out_size(w, 3, 2)), c.stem);
  for (const auto& st : c.stages)
    row(detail::cat("stage", st.stage + 1, " (", sp.stage_blocks[size_t(st.stage)], " blocks)"),
        shape(st.channels, st.height, st.width), st.cost);
  std::printf("%s\n", std::string(67, '-').c_str());
  row("backbone", "", c.backbone);
  row(detail::cat("head (", o.classes, " classes", o.no_head_bias ? ", no bias" : "", ")"), "", c.head);
  row("with head", "", c.with_head);
}

void print_json(const nn::SearchSpace& sp, const nn::Arch& arch, const search::ArchCost& c, int64_t h, int64_t w,
                const FlopsOptions& o) {
  auto cost = [](const search::Cost& k) { return detail::cat("{\"macs\": ", k.macs, ", \"params\": ", k.params, "}"); };
  std::ostringstream os;
  os << "{\"space\": \"" << sp.name << "\", \"arch\": " << nn::format_arch_json(arch) << ", \"input\": [" << h << ", "
     << w << "], \"num_classes\": " << o.classes << ", \"head_bias\": " << (o.no_head_bias ? "false" : "true")
     << ",\n \"backbone\": " << cost(c.backbone) << ", \"with_head\": " << cost(c.with_head)
     << ",\n \"stem\": " << cost(c.stem) << ", \"head\": " << cost(c.head) << ",\n \"stages\": [";
  for (size_t i = 0; i < c.stages.size(); ++i) {
    const auto& st = c.stages[i];
    os << (i ? ", " : "") << "{\"stage\": " << st.stage + 1 << ", \"channels\": " << st.channels
       << ", \"height\": " << st.height << ", \"width\": " << st.width << ", \"macs\": " << st.cost.macs
       << ", \"params\": " << st.cost.params << "}";
  }
  os << "],\n \"blocks\": [";
  for (size_t i = 0; i < c.blocks.size(); ++i) os << (i ? ", " : "") << cost(c.blocks[i]);
  os << "]";
  if (!o.latency_table.empty())
    os << ",\n \"predicted_latency_ms\": " << search::read_latency_table(o.latency_table, sp.name).predict_ms(arch);
  os << "}\n";
  std::fputs(os.str().c_str(), stdout);
}

void run_flops(const FlopsOptions& o) {
  const nn::SearchSpace& sp = nn::space_by_name(o.space);
  const nn::Arch arch = load_arch(o.arch);
  nn::validate_arch(sp, arch);
  search::CostOptions co;
  parse_input(o.input, co.height, co.width);
  co.num_classes = o.classes;
  co.head_bias = o.no_head_bias ? search::HeadBias::Without : search::HeadBias::With;
  const search::ArchCost c = search::arch_cost(sp, arch, co);
  if (o.json) {
    print_json(sp, arch, c, co.height, co.width, o);
    return;
  }
  print_table(sp, arch, c, co.height, co.width, o);
  if (!o.latency_table.empty()) {
    const search::LatencyTable t = search::read_latency_table(o.latency_table, sp.name);
    std::printf("\npredicted latency %.3f ms (%s at %lldx%lld, batch %lld, %lld threads, %s; fixed parts %.3f ms)\n",
                t.predict_ms(arch), t.detector.c_str(), (long long)t.height, (long long)t.width, (long long)t.batch,
                (long long)t.threads, t.machine.c_str(), t.fixed_ms());
  }
}

void setup_flops(CLI::App& root) {
  auto o = std::make_shared<FlopsOptions>();
  CLI::App* sub = root.add_subcommand(
      "flops", "FLOPs (multiply-adds of conv/linear layers) and parameters (BN included) of an architecture");
  std::string names;
  for (const auto& n : nn::space_names()) names += (names.empty() ? "" : ", ") + n;
  sub->add_option("--space", o->space, "search space: " + names)->capture_default_str();
  sub->add_option("--arch", o->arch,
                  "architecture: choices 0..3 per block as 2,1,2,0,... or [2,1,...], or a JSON file holding the list")
      ->required();
  sub->add_option("--input", o->input, "input size: 224 or HxW (e.g. 800x1333)")->capture_default_str();
  sub->add_option("--classes", o->classes, "classifier outputs of the head")->capture_default_str()->check(positive());
  sub->add_flag("--no-head-bias", o->no_head_bias, "head conv and classifier without bias (the SPOS network)");
  sub->add_flag("--json", o->json, "print one JSON object instead of a table");
  sub->add_option("--latency-table", o->latency_table,
                  "also print the latency predicted by this table (detnas latency-table) for the same space");
  sub->callback([o] { run_flops(*o); });
}

}  // namespace

DETNAS_COMMAND(setup_flops);

}  // namespace detnas::cli
