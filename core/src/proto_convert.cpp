#include "possync/core/proto_convert.hpp"

#include <algorithm>
#include <limits>

#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

namespace possync::core {

namespace {

error invalid(std::string message) {
  return error{errc::invalid_argument, std::move(message)};
}

void to_proto(const dot& in, v1::Dot* out) {
  out->set_node(in.node);
  out->set_counter(in.counter);
}

dot from_proto(const v1::Dot& in) {
  return dot{in.node(), in.counter()};
}

void to_proto(const version_vector& in, v1::VersionVector* out, vectors form) {
  if (in.empty()) return;
  if (form == vectors::packed) {
    out->set_packed(in.encode());
    return;
  }
  out->mutable_entries()->Reserve(static_cast<int>(in.size()));
  for (const auto& [node, counter] : in.entries()) {
    auto* e = out->add_entries();
    e->set_node(node);
    e->set_counter(counter);
  }
}

result<version_vector> from_proto(const v1::VersionVector& in, const char* what) {
  if (!in.packed().empty()) {
    if (in.entries_size() > 0) return invalid(std::string(what) + " has both entries and packed entries");
    auto vv = version_vector::decode(in.packed());
    if (!vv) return invalid(std::string(what) + ": " + vv.err().message);
    return vv;
  }
  std::vector<version_vector::entry> entries;
  entries.reserve(static_cast<size_t>(in.entries_size()));
  for (int i = 0; i < in.entries_size(); ++i) {
    const auto& e = in.entries(i);
    std::string where = std::string(what) + " entry " + std::to_string(i);
    if (e.node() == 0) return invalid(where + " has node id 0");
    if (e.counter() == 0) return invalid(where + " (node " + node_id_to_string(e.node()) + ") has counter 0");
    if (!entries.empty() && e.node() <= entries.back().first)
      return invalid(where + " (node " + node_id_to_string(e.node()) +
                     ") is not sorted after the previous node or repeats it");
    entries.emplace_back(e.node(), e.counter());
  }
  return version_vector(std::move(entries));
}

} // namespace

void to_proto(const hlc_timestamp& in, v1::Hlc* out) {
  out->set_wall_ms(in.wall_ms);
  out->set_logical(in.logical);
  out->set_node(in.node);
}

hlc_timestamp from_proto(const v1::Hlc& in) {
  return hlc_timestamp{in.wall_ms(), in.logical(), in.node()};
}

void to_proto(const record_key& in, v1::RecordKey* out) {
  out->set_tenant(in.tenant);
  out->set_scope(in.scope);
  out->set_collection(in.collection);
  out->set_id(in.id);
}

record_key from_proto(const v1::RecordKey& in) {
  return record_key{in.tenant(), in.scope(), in.collection(), in.id()};
}

void to_proto(const version& in, v1::Version* out, vectors form) {
  to_proto(in.id, out->mutable_dot());
  to_proto(in.past, out->mutable_past(), form);
  to_proto(in.hlc, out->mutable_hlc());
  out->set_tombstone(in.tombstone);
  out->set_body(in.body);
  out->set_hq(in.hq);
  for (const auto& [field, stamp] : in.fields) {
    auto* f = out->add_fields();
    f->set_field(field);
    to_proto(stamp.origin, f->mutable_dot());
    to_proto(stamp.hlc, f->mutable_hlc());
    f->set_hq(stamp.hq);
  }
}

result<version> from_proto(const v1::Version& in) {
  if (!in.has_dot()) return invalid("version has no dot");
  version out;
  out.id = from_proto(in.dot());
  if (out.id.node == 0) return invalid("version dot has node id 0");
  if (out.id.counter == 0) return invalid("version dot " + out.id.to_string() + " has counter 0");
  auto past = from_proto(in.past(), "version past");
  if (!past) return invalid("version " + out.id.to_string() + ": " + past.err().message);
  out.past = std::move(*past);
  out.hlc = from_proto(in.hlc());
  out.tombstone = in.tombstone();
  out.body = in.body();
  out.hq = in.hq();
  for (const auto& f : in.fields()) {
    field_stamp stamp{from_proto(f.dot()), from_proto(f.hlc()), f.hq()};
    if (!out.fields.emplace(f.field(), stamp).second)
      return invalid("version " + out.id.to_string() + " stamps field " + std::to_string(f.field()) +
                     " twice");
  }
  return out;
}

void to_proto(const record& in, v1::Record* out, vectors form) {
  to_proto(in.key, out->mutable_key());
  out->mutable_versions()->Reserve(static_cast<int>(in.versions.size()));
  for (const auto& v : in.versions)
    to_proto(v, out->add_versions(), form);
}

result<record> from_proto(const v1::Record& in) {
  record out;
  out.key = from_proto(in.key());
  out.versions.reserve(static_cast<size_t>(in.versions_size()));
  for (int i = 0; i < in.versions_size(); ++i) {
    auto v = from_proto(in.versions(i));
    if (!v)
      return invalid("record " + out.key.to_string() + " version " + std::to_string(i) + ": " +
                     v.err().message);
    out.versions.push_back(std::move(*v));
  }
  std::stable_sort(out.versions.begin(), out.versions.end(),
                   [](const version& a, const version& b) { return a.id < b.id; });
  return out;
}

std::string serialize_deterministic(const google::protobuf::MessageLite& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string encode_record(const record& r) {
  google::protobuf::Arena arena;
  auto& msg = *google::protobuf::Arena::CreateMessage<v1::Record>(&arena);
  to_proto(r, &msg, vectors::packed);
  return serialize_deterministic(msg);
}

result<record> decode_record(std::string_view bytes) {
  google::protobuf::Arena arena;
  auto& msg = *google::protobuf::Arena::CreateMessage<v1::Record>(&arena);
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return invalid("record: " + std::to_string(bytes.size()) + " bytes do not parse as possync.v1.Record");
  return from_proto(msg);
}

} // namespace possync::core
