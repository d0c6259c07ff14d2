// libFuzzer entry point of one target (POSSYNC_FUZZ_TARGET = session, record, token).

#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return possync::fuzz::POSSYNC_FUZZ_TARGET(data, size);
}
