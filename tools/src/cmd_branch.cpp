// `possync branch`: the store PC. Serves its terminals, relays their sales to HQ through
// its outbox and keeps serving while HQ is down; runs until SIGINT/SIGTERM.

#include <memory>

#include "commands.hpp"
#include "config.hpp"
#include "serve.hpp"

namespace possync::tools {

void add_branch_command(CLI::App& app, command_fn& run) {
  auto* cmd =
      app.add_subcommand("branch", "run a branch: serve terminals, relay to HQ, until SIGINT/SIGTERM");
  auto flags = std::make_shared<node_flags>(cmd, storage::node_role::branch);
  cmd->callback([flags, &run] {
    run = [flags] {
      auto s = flags->resolve();
      if (!s) {
        std::fprintf(stderr, "possync branch: %s\n", s.err().message.c_str());
        return int{exit_usage};
      }
      return serve(*s);
    };
  });
}

} // namespace possync::tools
