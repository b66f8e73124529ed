// Subcommand registration for the detnas binary: each cli/cmd_<name>.cpp adds
// its CLI11 subcommand with DETNAS_COMMAND(fn), where fn(CLI::App& root) creates
// the subcommand, binds its options and sets a callback that does the work.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace detnas::cli {

using CommandSetup = std::function<void(CLI::App& root)>;
std::vector<CommandSetup>& command_registry();
struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup f) { command_registry().push_back(std::move(f)); }
};

}  // namespace detnas::cli

#define DETNAS_CMD_CAT2(a, b) a##b
#define DETNAS_CMD_CAT(a, b) DETNAS_CMD_CAT2(a, b)
#define DETNAS_COMMAND(fn) static ::detnas::cli::CommandRegistrar DETNAS_CMD_CAT(cmd_reg_, __LINE__)(fn)
