#pragma once
// Conversion between core types and possync.v1 protobuf messages. Include only where
// wire or stored messages are handled (storage, sessions): it pulls in protobuf.

#include <string>
#include <string_view>

#include "possync/core/record.hpp"
#include "possync/v1/records.pb.h"

namespace possync::core {

void to_proto(const hlc_timestamp& in, v1::Hlc* out);
hlc_timestamp from_proto(const v1::Hlc& in);
void to_proto(const record_key& in, v1::RecordKey* out);
record_key from_proto(const v1::RecordKey& in);
/// How version vectors are written: `packed` (VersionVector.packed) for stores and
/// peers that read it, one message per entry otherwise. Readers take either.
enum class vectors : bool { entries, packed };

void to_proto(const version& in, v1::Version* out, vectors form = vectors::entries);
/// invalid_argument on a missing or invalid dot, or a malformed vector.
result<version> from_proto(const v1::Version& in);
void to_proto(const record& in, v1::Record* out, vectors form = vectors::entries);
result<record> from_proto(const v1::Record& in);

/// Deterministic serialization (map fields in key order): equal messages give equal bytes.
std::string serialize_deterministic(const google::protobuf::MessageLite& msg);

/// Serialized possync.v1.Record (version vectors packed).
std::string encode_record(const record& r);
result<record> decode_record(std::string_view bytes);

} // namespace possync::core
