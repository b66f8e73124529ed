// detnas: the command-line entry point. Builds the CLI11 app from the registered
// subcommands, runs the chosen one, and turns errors into a message and exit code.
#include <cstdio>

#include "cli/command.h"
#include "core/error.h"
#include "runtime/threads.h"

namespace detnas::cli {
std::vector<CommandSetup>& command_registry() {
  static std::vector<CommandSetup> r;
  return r;
}
}  // namespace detnas::cli

int main(int argc, char** argv) {
  detnas::rt::ensure_blas_core(argv);
  CLI::App app{"detnas: DetNAS (backbone search for object detection) in C++/CUDA, no framework"};
  app.require_subcommand(1);
  for (auto& setup : detnas::cli::command_registry()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const detnas::Error& e) {
    std::fprintf(stderr, "detnas: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "detnas: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
