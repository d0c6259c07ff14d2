#pragma once
// The subcommands of `possync`. Each add_* registers one subcommand on the app and
// stores what to run in `run`; main() runs it after parsing and exits with its code.

#include <functional>

#include <CLI/CLI.hpp>

namespace possync::tools {

/// What a parsed subcommand runs; returns the process exit code.
using command_fn = std::function<int()>;

/// Exit codes shared by the subcommands.
enum exit_code : int {
  exit_ok = 0,
  exit_failure = 1, ///< the store or a check failed
  exit_usage = 2,   ///< bad flags or an unknown name
};

void add_hq_command(CLI::App& app, command_fn& run);
void add_branch_command(CLI::App& app, command_fn& run);
void add_terminal_command(CLI::App& app, command_fn& run);
void add_demo_command(CLI::App& app, command_fn& run);
void add_inspect_command(CLI::App& app, command_fn& run);
void add_sim_command(CLI::App& app, command_fn& run);
void add_crash_writer_command(CLI::App& app, command_fn& run);
void add_version_command(CLI::App& app, command_fn& run);
void add_ctl_command(CLI::App& app, command_fn& run);
/// backup, restore, verify, recover (cmd_store.cpp).
void add_store_commands(CLI::App& app, command_fn& run);

} // namespace possync::tools
