#pragma once
// Collection registry and record validation. The POS schema ships built in; users
// may register more collections.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "possync/core/error.hpp"
#include "possync/core/policy.hpp"
#include "possync/core/record.hpp"

namespace possync::core {

/// Upload lanes; a lower number is sent first.
enum lane : uint8_t { lane_sales = 0, lane_stock = 1, lane_catalog = 2, lane_reports = 3 };
constexpr size_t lane_count = 4;

/// Where records of a collection live.
enum class scope_rule : uint8_t {
  tenant,  ///< scope must be "" (tenant-wide: catalogue)
  branch,  ///< scope must be a branch id (branch-local: sales, stock)
  any,     ///< either
};

/// Which downstream roles may push records of a collection (bits of
/// collection_info::writers). HQ writes every collection; HQ's sessions enforce this
/// mask, and so do branches for their terminals.
enum writer : uint8_t { writer_terminal = 1u << 0, writer_branch = 1u << 1, writer_any = writer_terminal | writer_branch };

/// Everything possync knows about one collection.
struct collection_info {
  std::string name;            ///< "sale"; 1-32 chars [a-z0-9_]
  std::string body_type;       ///< full protobuf name, "possync.v1.Sale"; "" = opaque bytes
  uint8_t lane = lane_catalog;
  core::policy policy = core::policy::lww;
  core::tie_rule tie = core::tie_rule::lww;
  scope_rule scope = scope_rule::tenant;
  size_t max_body_bytes = 64 * 1024;
  bool ulid_ids = false;       ///< ids must be ULIDs (records made at the edge)
  bool node_ids = false;       ///< ids must be node ids: 16 lower-case hex digits (node_id_to_string)
  bool restocks = false;       ///< return: adds its items back to stock
  bool sells = false;          ///< sale: takes its items from stock
  uint8_t writers = writer_any; ///< downstream roles that may push it (writer bits); 0 = HQ only
};

/// Limits applied by validation (defaults; nodes may lower them).
struct record_limits {
  size_t max_id_bytes = 128;
  size_t max_tenant_bytes = 64;
  size_t max_scope_bytes = 64;
  size_t max_siblings = 64;
  size_t max_vector_entries = 1024;
};

/// Collection name -> info. Thread-safe for concurrent readers once built.
class collection_registry {
public:
  /// Registry with the POS schema: sale, payment, stock, stock_movement, return,
  /// product, category, price, customer, report, setting, device (the node registry:
  /// tenant-wide, lane 2, hq_wins, ids = node ids), revocation (revoked device
  /// tokens: tenant-wide, lane 1, id = token id). Writers: terminals push sales,
  /// payments, stock, stock movements, returns and reports of their branch; branches
  /// those plus price overrides and settings of their branch and product and customer
  /// edits (field_merge: HQ and branch edits of different fields both survive);
  /// category, device and revocation are written at HQ only.
  static collection_registry pos();
  /// Adds or replaces; invalid_argument on a bad name, lane or body type.
  status add(collection_info info);
  const collection_info* find(std::string_view name) const;
  std::vector<const collection_info*> list() const;

private:
  std::map<std::string, collection_info, std::less<>> by_name_;
};

/// True if `id` is 1..max bytes of [A-Za-z0-9._:-].
bool valid_id(std::string_view id, size_t max_bytes = 128);

/// Checks key syntax and the collection's scope rule (and ULID or node ids where
/// required).
status validate_key(const record_key& key, const collection_registry& reg,
                    const record_limits& limits = {});
/// Checks a body against the collection: size (resource_exhausted) and (if body_type
/// is set) that it parses as that protobuf message (invalid_argument); counter bodies
/// must also decode (decode_counter).
status validate_body(const collection_info& info, std::string_view body);
/// A body as JSON (protobuf's JSON mapping of the collection's message), for
/// operators (conflicts, inspect). invalid_argument when it does not parse.
result<std::string> body_to_json(const collection_info& info, std::string_view body);
/// The reverse: JSON from an operator (a merged conflict resolution) to the body
/// bytes; invalid_argument naming what is wrong. Unknown fields are refused.
result<std::string> body_from_json(const collection_info& info, std::string_view json);
/// Key, every version's dots, sibling count, body of every non-tombstone version.
/// Errors: invalid_argument for malformed input; resource_exhausted for a body, sibling
/// count or version vector over its limit. Messages name the record and version.
status validate_record(const record& r, const collection_registry& reg,
                       const record_limits& limits = {});

} // namespace possync::core
