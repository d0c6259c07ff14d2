#include "local_store.hpp"

#include <filesystem>

#include "possync/core/schema.hpp"

namespace possync::tools {

result<local_store> open_terminal_store(const std::string& dir, const std::string& keyring) {
  if (dir.empty()) return error(errc::invalid_argument, "--dir must not be empty");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error(errc::unavailable, "cannot create directory '" + dir + "': " + ec.message());
  storage::db_options dbo;
  dbo.path = dir;
  dbo.sync = true;
  auto db = storage::database::open(dbo);
  if (!db) return error(db.err().code, "cannot open store in '" + dir + "': " + db.err().message);
  storage::store_options so;
  so.role = storage::node_role::terminal;
  if (!keyring.empty()) {
    auto c = storage::value_cipher::from_keyring(keyring);
    if (!c) return std::move(c).err();
    so.cipher = std::move(c).value();
  }
  auto store = storage::node_store::open(*db, so);
  if (!store)
    return error(store.err().code, "cannot open node store in '" + dir + "': " + store.err().message);
  local_store out;
  out.db = std::move(*db);
  out.store = std::move(*store);
  return out;
}

bool valid_name(const std::string& text) {
  return core::valid_id(text, 64);
}

} // namespace possync::tools
