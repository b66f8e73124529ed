// detnas: the command-line entry point. Builds the CLI11 app from the registered
// subcommands, runs the chosen one, and turns errors into a message and exit code.
// Under mpirun every rank runs this; an error on any rank ends the whole job
// with that rank named (rt::dist::fail_job), so no rank waits forever.
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "runtime/dist.h"
#include "runtime/threads.h"

namespace detnas::cli {
std::vector<CommandSetup>& command_registry() {
  static std::vector<CommandSetup> r;
  return r;
}
}  // namespace detnas::cli

int main(int argc, char** argv) {
  namespace dist = detnas::rt::dist;
  detnas::rt::ensure_blas_core(argv);
  CLI::App app{"detnas: DetNAS (backbone search for object detection) in C++/CUDA, no framework"};
  app.require_subcommand(1);
  for (auto& setup : detnas::cli::command_registry()) setup(app);
  try {
    dist::init(&argc, &argv);
    // pretrain, train, eval and search use every rank; under mpirun the other
    // commands run once, on rank 0.
    std::string cmd;
    for (int i = 1; i < argc && cmd.empty(); ++i)
      if (argv[i][0] != '-') cmd = argv[i];
    if (dist::active() && cmd != "pretrain" && cmd != "train" && cmd != "eval" && cmd != "search") {
      if (!dist::is_root()) {
        dist::finalize();
        return 0;
      }
      std::fprintf(stderr, "[detnas] %s: runs on rank 0 only (of %d)\n", cmd.c_str(), dist::size());
    }
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Every rank parses the same arguments: rank 0 alone prints help or the error.
    const int code = dist::is_root() ? app.exit(e) : (e.get_exit_code());
    dist::finalize();
    return code;
  } catch (const std::exception& e) {
    dist::fail_job(e.what(), 1);
    return 1;
  }
  dist::finalize();
  return 0;
}
