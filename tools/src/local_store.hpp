#pragma once
// Opening the local store of a terminal, shared by the subcommands that write one.

#include <memory>
#include <string>

#include "possync/core/error.hpp"
#include "possync/storage/store.hpp"

namespace possync::tools {

/// An open database and the node store inside it. The store is declared last so it
/// closes before the database.
struct local_store {
  std::shared_ptr<storage::database> db;
  std::unique_ptr<storage::node_store> store;
};

/// Opens (creating if missing) a durable terminal store in `dir`. Errors carry the
/// directory in their message.
/// `keyring`: encryption at rest (storage/cipher.hpp keyring text), "" = plaintext.
result<local_store> open_terminal_store(const std::string& dir, const std::string& keyring = "");

/// True if `text` is a valid tenant or branch id ([A-Za-z0-9._:-], 1..64 bytes).
bool valid_name(const std::string& text);

} // namespace possync::tools
