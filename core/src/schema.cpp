#include "possync/core/schema.hpp"

#include <memory>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "possync/core/ids.hpp"
#include "possync/v1/pos.pb.h"

namespace possync::core {

namespace {

namespace pb = google::protobuf;

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

bool id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == ':' || c == '-';
}

// Quotes a value for an error message, cut to keep messages readable.
std::string quoted(std::string_view s) {
  constexpr size_t max = 80;
  if (s.size() <= max) return "'" + std::string(s) + "'";
  return "'" + std::string(s.substr(0, max)) + "...' (" + std::to_string(s.size()) + " bytes)";
}

const pb::Message* prototype_of(const std::string& full_name) {
  const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(full_name);
  if (!d) return nullptr;
  return pb::MessageFactory::generated_factory()->GetPrototype(d);
}

collection_info make(std::string name, const pb::Descriptor* body, uint8_t lane, core::policy p,
                     scope_rule scope, uint8_t writers = writer_any) {
  collection_info c;
  c.name = std::move(name);
  c.body_type = body->full_name();
  c.lane = lane;
  c.policy = p;
  c.scope = scope;
  c.writers = writers;
  return c;
}

} // namespace

collection_registry collection_registry::pos() {
  collection_registry reg;
  auto put = [&reg](collection_info c) { reg.by_name_[c.name] = std::move(c); };

  auto sale = make("sale", v1::Sale::descriptor(), lane_sales, policy::immutable, scope_rule::branch);
  sale.ulid_ids = true;
  sale.sells = true;
  put(sale);
  auto payment = make("payment", v1::Payment::descriptor(), lane_sales, policy::immutable, scope_rule::branch);
  payment.ulid_ids = true;
  put(payment);
  put(make("stock", v1::StockCounter::descriptor(), lane_stock, policy::counter, scope_rule::branch));
  auto movement =
      make("stock_movement", v1::StockMovement::descriptor(), lane_stock, policy::immutable, scope_rule::branch);
  movement.ulid_ids = true;
  put(movement);
  auto ret = make("return", v1::Return::descriptor(), lane_stock, policy::immutable, scope_rule::branch);
  ret.ulid_ids = true;
  ret.restocks = true;
  put(ret);
  auto product = make("product", v1::Product::descriptor(), lane_catalog, policy::field_merge, scope_rule::tenant);
  product.tie = tie_rule::lww;
  product.writers = writer_branch;
  put(product);
  put(make("category", v1::Category::descriptor(), lane_catalog, policy::hq_wins, scope_rule::tenant, 0));
  put(make("price", v1::Price::descriptor(), lane_catalog, policy::hq_wins, scope_rule::branch, writer_branch));
  put(make("customer", v1::Customer::descriptor(), lane_catalog, policy::field_merge, scope_rule::tenant,
           writer_branch));
  auto report = make("report", v1::Report::descriptor(), lane_reports, policy::immutable, scope_rule::branch);
  report.max_body_bytes = 8 * 1024 * 1024;
  put(report);
  put(make("setting", v1::Setting::descriptor(), lane_catalog, policy::lww, scope_rule::any, writer_branch));
  // hq_wins: a node registers itself, HQ's edit (revocation) wins over a concurrent one.
  auto device = make("device", v1::Device::descriptor(), lane_catalog, policy::hq_wins, scope_rule::tenant);
  device.node_ids = true;
  device.writers = 0;
  put(device);
  // A revoked token: HQ writes it, branches receive it and refuse the token at Hello
  // and end the sessions that hold it (lane 1: ahead of the catalogue).
  put(make("revocation", v1::TokenRevocation::descriptor(), lane_stock, policy::hq_wins, scope_rule::tenant, 0));
  // An operator's order to one node (full resync, reset): HQ writes it into the node's
  // branch scope; the node receives it with its data, even after being offline.
  auto command = make("node_command", v1::NodeCommand::descriptor(), lane_stock, policy::hq_wins,
                      scope_rule::branch, 0);
  command.node_ids = true;
  put(command);
  // How each terminal stands, reported by its branch node to HQ (lane 3, like reports).
  auto presence = make("node_presence", v1::NodePresence::descriptor(), lane_reports, policy::lww,
                       scope_rule::branch, writer_branch);
  presence.node_ids = true;
  put(presence);
  return reg;
}

status collection_registry::add(collection_info info) {
  if (!valid_name(info.name))
    return error(errc::invalid_argument,
                 "collection name " + quoted(info.name) + " must be 1-32 characters of [a-z0-9_]");
  if (info.lane >= lane_count)
    return error(errc::invalid_argument, "collection '" + info.name + "' has lane " + std::to_string(info.lane) +
                                             ", must be below " + std::to_string(lane_count));
  if (!info.body_type.empty() && !prototype_of(info.body_type))
    return error(errc::invalid_argument, "collection '" + info.name + "' has body type " +
                                             quoted(info.body_type) +
                                             ", which is not a protobuf message linked into this program");
  std::string name = info.name;
  by_name_[name] = std::move(info);
  return {};
}

const collection_info* collection_registry::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

std::vector<const collection_info*> collection_registry::list() const {
  std::vector<const collection_info*> out;
  out.reserve(by_name_.size());
  for (const auto& [name, info] : by_name_) out.push_back(&info);
  return out;
}

bool valid_id(std::string_view id, size_t max_bytes) {
  if (id.empty() || id.size() > max_bytes) return false;
  for (char c : id)
    if (!id_char(c)) return false;
  return true;
}

namespace {

status check_id(const char* what, std::string_view value, size_t max_bytes) {
  if (value.empty()) return error(errc::invalid_argument, std::string(what) + " is empty");
  if (value.size() > max_bytes)
    return error(errc::invalid_argument, std::string(what) + " " + quoted(value) + " is " +
                                             std::to_string(value.size()) + " bytes, at most " +
                                             std::to_string(max_bytes) + " allowed");
  for (char c : value)
    if (!id_char(c))
      return error(errc::invalid_argument,
                   std::string(what) + " " + quoted(value) + " has a character outside [A-Za-z0-9._:-]");
  return {};
}

} // namespace

status validate_key(const record_key& key, const collection_registry& reg, const record_limits& limits) {
  if (auto e = check_id("tenant", key.tenant, limits.max_tenant_bytes)) return e;
  if (!key.scope.empty())
    if (auto e = check_id("scope", key.scope, limits.max_scope_bytes)) return e;
  const collection_info* info = reg.find(key.collection);
  if (!info) return error(errc::invalid_argument, "unknown collection " + quoted(key.collection));
  switch (info->scope) {
    case scope_rule::tenant:
      if (!key.scope.empty())
        return error(errc::invalid_argument, "collection '" + info->name + "' is tenant-wide, needs scope '', got " +
                                                 quoted(key.scope));
      break;
    case scope_rule::branch:
      if (key.scope.empty())
        return error(errc::invalid_argument, "collection '" + info->name + "' needs a branch scope, got ''");
      break;
    case scope_rule::any: break;
  }
  if (auto e = check_id("id", key.id, limits.max_id_bytes)) return e;
  if (info->ulid_ids && !is_ulid(key.id))
    return error(errc::invalid_argument, "collection '" + info->name + "' needs a ULID id, got " + quoted(key.id));
  if (info->node_ids) {
    auto n = parse_node_id(key.id);
    if (!n || node_id_to_string(*n) != key.id)
      return error(errc::invalid_argument, "collection '" + info->name +
                                               "' needs a node id (16 lower-case hex digits), got " + quoted(key.id));
  }
  return {};
}

status validate_body(const collection_info& info, std::string_view body) {
  if (body.size() > info.max_body_bytes)
    return error(errc::resource_exhausted, "body of collection '" + info.name + "' is " +
                                               std::to_string(body.size()) + " bytes, limit " +
                                               std::to_string(info.max_body_bytes));
  if (info.body_type.empty()) return {};
  // A counter body: decode_counter parses it as the same message and checks its entries.
  if (info.policy == policy::counter && info.body_type == v1::StockCounter::descriptor()->full_name()) {
    auto c = decode_counter(body);
    if (!c)
      return error(errc::invalid_argument, "body of collection '" + info.name + "': " + c.err().message);
    return {};
  }
  const pb::Message* proto = prototype_of(info.body_type);
  if (!proto)
    return error(errc::invalid_argument, "collection '" + info.name + "' has unknown body type " +
                                             quoted(info.body_type));
  pb::Arena arena;
  pb::Message* msg = proto->New(&arena);
  if (!msg->ParseFromArray(body.data(), static_cast<int>(body.size())))
    return error(errc::invalid_argument, "body of collection '" + info.name + "' does not parse as " +
                                             info.body_type + " (" + std::to_string(body.size()) + " bytes)");
  return {};
}

result<std::string> body_to_json(const collection_info& info, std::string_view body) {
  const pb::Message* proto = info.body_type.empty() ? nullptr : prototype_of(info.body_type);
  if (!proto) return error(errc::invalid_argument, "collection '" + info.name + "' has no known body type");
  std::unique_ptr<pb::Message> msg(proto->New());
  if (!msg->ParseFromArray(body.data(), static_cast<int>(body.size())))
    return error(errc::invalid_argument, "body of collection '" + info.name + "' does not parse as " +
                                             info.body_type);
  std::string out;
  pb::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  auto st = pb::util::MessageToJsonString(*msg, &out, o);
  if (!st.ok()) return error(errc::invalid_argument, "body of '" + info.name + "' as JSON: " + st.ToString());
  return out;
}

result<std::string> body_from_json(const collection_info& info, std::string_view json) {
  const pb::Message* proto = info.body_type.empty() ? nullptr : prototype_of(info.body_type);
  if (!proto) return error(errc::invalid_argument, "collection '" + info.name + "' has no known body type");
  std::unique_ptr<pb::Message> msg(proto->New());
  pb::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  auto st = pb::util::JsonStringToMessage(pb::StringPiece(json.data(), json.size()), msg.get(), o);
  if (!st.ok())
    return error(errc::invalid_argument,
                 "JSON is not a body of collection '" + info.name + "' (" + info.body_type + "): " + st.ToString());
  std::string out;
  if (!msg->SerializeToString(&out)) return error(errc::internal, "cannot serialize the body");
  if (auto e = validate_body(info, out)) return e;
  return out;
}

status validate_record(const record& r, const collection_registry& reg, const record_limits& limits) {
  if (auto e = validate_key(r.key, reg, limits)) return e;
  const collection_info& info = *reg.find(r.key.collection);
  const std::string where = "record " + r.key.to_string();
  if (r.versions.size() > limits.max_siblings)
    return error(errc::resource_exhausted, where + " has " + std::to_string(r.versions.size()) +
                                               " siblings, limit " + std::to_string(limits.max_siblings));
  for (size_t i = 0; i < r.versions.size(); ++i) {
    const version& v = r.versions[i];
    if (!v.id.valid())
      return error(errc::invalid_argument, where + ": version " + std::to_string(i) + " has invalid dot " +
                                               v.id.to_string());
    const std::string vwhere = where + ": version " + v.id.to_string();
    for (size_t j = 0; j < i; ++j)
      if (r.versions[j].id == v.id) return error(errc::invalid_argument, vwhere + " appears twice");
    if (v.past.size() > limits.max_vector_entries)
      return error(errc::resource_exhausted, vwhere + " has " + std::to_string(v.past.size()) +
                                                 " version vector entries, limit " +
                                                 std::to_string(limits.max_vector_entries));
    if (v.past.covers(v.id))
      return error(errc::invalid_argument, vwhere + " has a past " + v.past.to_string() + " covering its own dot");
    for (const auto& [f, s] : v.fields)
      if (!s.origin.valid())
        return error(errc::invalid_argument, vwhere + " field " + std::to_string(f) + " has invalid stamp dot " +
                                                 s.origin.to_string());
    if (v.tombstone) {
      if (!v.body.empty())
        return error(errc::invalid_argument, vwhere + " is a tombstone with a " + std::to_string(v.body.size()) +
                                                 "-byte body");
      continue;
    }
    if (auto e = validate_body(info, v.body)) return error(e.code, vwhere + ": " + e.message);
  }
  return {};
}

} // namespace possync::core
