// `possync hq`: the central node. Accepts branch (and terminal) sessions, keeps every
// branch's sales and the device registry; runs until SIGINT/SIGTERM.

#include <memory>

#include "commands.hpp"
#include "config.hpp"
#include "serve.hpp"

namespace possync::tools {

void add_hq_command(CLI::App& app, command_fn& run) {
  auto* cmd = app.add_subcommand("hq", "run HQ: serve branches and terminals until SIGINT/SIGTERM");
  auto flags = std::make_shared<node_flags>(cmd, storage::node_role::hq);
  cmd->callback([flags, &run] {
    run = [flags] {
      auto s = flags->resolve();
      if (!s) {
        std::fprintf(stderr, "possync hq: %s\n", s.err().message.c_str());
        return int{exit_usage};
      }
      return serve(*s);
    };
  });
}

} // namespace possync::tools
