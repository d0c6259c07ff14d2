// AES-256-GCM values (cipher.hpp).

#include "possync/storage/cipher.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <sstream>

namespace possync::storage {

namespace {

constexpr std::string_view magic = "PSE1";
constexpr size_t id_bytes = 4, nonce_bytes = 12, tag_bytes = 16;
constexpr size_t header = magic.size() + id_bytes + nonce_bytes;

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

using ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

} // namespace

result<std::shared_ptr<const value_cipher>> value_cipher::from_keyring(std::string_view text) {
  auto c = std::make_shared<value_cipher>();
  std::istringstream in{std::string(text)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string id_text, hex;
    if (!(ls >> id_text)) continue;
    auto bad = [&](const std::string& why) {
      return error(errc::invalid_argument, "encryption keyring line " + std::to_string(n) + ": " + why);
    };
    if (!(ls >> hex)) return bad("expected '<id> <64 hex digits>'");
    uint64_t id = 0;
    for (char ch : id_text) {
      if (ch < '0' || ch > '9' || id > 0xffffffffULL) return bad("key id must be 1..4294967295");
      id = id * 10 + static_cast<uint64_t>(ch - '0');
    }
    if (id == 0 || id > 0xffffffffULL) return bad("key id must be 1..4294967295");
    if (hex.size() != 64) return bad("a key is 64 hex digits (256 bits), got " + std::to_string(hex.size()));
    std::string raw(32, '\0');
    for (size_t i = 0; i < 32; ++i) {
      int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
      if (hi < 0 || lo < 0) return bad("the key has a character that is not hex");
      raw[i] = static_cast<char>(hi * 16 + lo);
    }
    if (c->keys_.count(static_cast<uint32_t>(id))) return bad("key id " + id_text + " appears twice");
    if (c->current_ == 0) c->current_ = static_cast<uint32_t>(id);
    c->keys_[static_cast<uint32_t>(id)] = std::move(raw);
  }
  if (c->current_ == 0) return error(errc::invalid_argument, "encryption keyring holds no key");
  return std::shared_ptr<const value_cipher>(std::move(c));
}

result<std::string> value_cipher::new_keyring_line(uint32_t id) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return error(errc::internal, "no randomness for a key");
  static const char* hex = "0123456789abcdef";
  std::string out = std::to_string(id) + " ";
  for (unsigned char b : raw) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

bool value_cipher::looks_sealed(std::string_view value) {
  return value.size() >= header + tag_bytes && value.substr(0, magic.size()) == magic;
}

result<std::string> value_cipher::seal(std::string_view aad, std::string_view plain) const {
  const std::string& key = keys_.at(current_);
  std::string out(header + plain.size() + tag_bytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  std::copy(magic.begin(), magic.end(), out.begin());
  for (size_t i = 0; i < id_bytes; ++i)
    o[magic.size() + i] = static_cast<unsigned char>(current_ >> (8 * (id_bytes - 1 - i)));
  unsigned char* nonce = o + magic.size() + id_bytes;
  if (RAND_bytes(nonce, nonce_bytes) != 1) return error(errc::internal, "no randomness for a nonce");
  ctx_ptr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, nonce_bytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o + header, &len, reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + header + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_bytes, o + header + plain.size()) != 1)
    return error(errc::internal, "AES-256-GCM encryption failed");
  return out;
}

result<std::string> value_cipher::open(std::string_view aad, std::string_view sealed) const {
  if (!looks_sealed(sealed)) return error(errc::data_loss, "a value is not encrypted in an encrypted store");
  const auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
  uint32_t id = 0;
  for (size_t i = 0; i < id_bytes; ++i)
    id = (id << 8) | s[magic.size() + i];
  auto k = keys_.find(id);
  if (k == keys_.end())
    return error(errc::data_loss, "a value is sealed with key " + std::to_string(id) + ", which the keyring lacks");
  const size_t n = sealed.size() - header - tag_bytes;
  std::string plain(n, '\0');
  ctx_ptr ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  unsigned char tag[tag_bytes];
  std::copy(s + header + n, s + header + n + tag_bytes, tag);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, nonce_bytes, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(k->second.data()),
                         s + magic.size() + id_bytes) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, s + header,
                        static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_bytes, tag) != 1)
    return error(errc::internal, "AES-256-GCM decryption could not start");
  if (EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &len) != 1)
    return error(errc::data_loss, "an encrypted value fails its integrity check (tampered, moved or truncated)");
  return plain;
}

} // namespace possync::storage
