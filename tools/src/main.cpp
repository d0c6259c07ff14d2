// possync: the command-line tool. One subcommand per file (cmd_*.cpp).

#include <cstdio>

#include "commands.hpp"
#include "config.hpp"

int main(int argc, char** argv) {
  // Until a command sets its own level: warnings and errors only, on stderr (stdout is
  // for what a command prints: tables, JSON, console answers).
  if (auto e = possync::tools::setup_logging("warn")) return 2;
  CLI::App app{"possync: sync engine for point-of-sale chains"};
  app.require_subcommand(1);
  possync::tools::command_fn run;
  possync::tools::add_demo_command(app, run);
  possync::tools::add_hq_command(app, run);
  possync::tools::add_branch_command(app, run);
  possync::tools::add_terminal_command(app, run);
  possync::tools::add_inspect_command(app, run);
  possync::tools::add_sim_command(app, run);
  possync::tools::add_crash_writer_command(app, run);
  possync::tools::add_ctl_command(app, run);
  possync::tools::add_store_commands(app, run);
  possync::tools::add_version_command(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // CLI11 returns 0 for --help; everything else is a usage error.
    return rc == 0 ? 0 : possync::tools::exit_usage;
  }
  if (!run) {
    std::fprintf(stderr, "possync: no command given (try --help)\n");
    return possync::tools::exit_usage;
  }
  return run();
}
