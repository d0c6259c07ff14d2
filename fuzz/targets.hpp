#pragma once
// The fuzz targets (libFuzzer's LLVMFuzzerTestOneInput signature, one per binary).
// Each takes any bytes and must neither crash, hang, leak nor trip a sanitizer; what
// it may return is irrelevant. See fuzz/README.md.

#include <cstddef>
#include <cstdint>

namespace possync::fuzz {

/// The session state machine at an upstream: the input is a stream of length-prefixed
/// Frames (2-byte big-endian length + bytes) fed through fragment reassembly into a
/// downlink_machine admitted on an in-memory HQ store, its applies run at once.
int session(const uint8_t* data, size_t size);
/// Record validation: the input as a v1::Record, converted and validated against the
/// POS schema, and each version's body validated for its collection.
int record(const uint8_t* data, size_t size);
/// Device tokens: the input as a token string, verified with a fixed key.
int token(const uint8_t* data, size_t size);

} // namespace possync::fuzz
