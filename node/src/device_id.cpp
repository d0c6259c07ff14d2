#include "possync/node/node.hpp"

namespace possync::node {

std::string device_id(core::node_id n) {
  return core::node_id_to_string(n);
}

} // namespace possync::node
