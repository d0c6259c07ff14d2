#include <cstdio>

#include "commands.hpp"

#ifndef POSSYNC_VERSION
#define POSSYNC_VERSION "0.1.0"
#endif

namespace possync::tools {

void add_version_command(CLI::App& app, command_fn& run) {
  auto* cmd = app.add_subcommand("version", "print the version of possync and its wire protocol");
  cmd->callback([&run] {
    run = [] {
      std::printf("possync %s (protocol possync.v1)\n", POSSYNC_VERSION);
      return int{exit_ok};
    };
  });
}

} // namespace possync::tools
