#pragma once
// Large frames in pieces: the session shell's write queue and its read reassembly
// (protocol: message Fragment in proto/possync/v1/sync.proto).
//
// A sync stream writes one frame at a time. Written whole, a 5 MB report (lane 3)
// held back every frame queued behind it until gRPC had compressed and sent it and
// the upstream had parsed and committed it: a sale waited ~50 ms behind one (W6,
// `possync sim --workload lanes`). So the shell writes a frame larger than
// `fragment_bytes` as Fragment frames, and between two pieces lets one waiting frame
// through that may overtake it (frames_commute). Order is kept wherever it means
// something: Pushes of one lane, Acks of one lane, Changes among themselves, and
// Hello, Welcome, Command, Error and Fragment keep their places.
//
// Pure: no I/O, no threads, no clocks; neither class is thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "possync/core/error.hpp"
#include "possync/v1/sync.pb.h"

namespace possync::actors {

/// True when frames `a` and `b` may be written in either order without changing what
/// the peer does: different lanes of Push or Ack, Push against Changes, Ack against
/// Push or Changes, Heartbeat against any of those. False for everything else.
bool frames_commute(const v1::Frame& a, const v1::Frame& b);

/// The frames a session has to write, in the order its machine produced them, handed
/// out one write at a time: large frames as pieces with overtaking frames between them.
class write_queue {
public:
  /// fragment_bytes: frames whose serialization is larger are cut into pieces of this
  /// many bytes; 0 = never cut.
  explicit write_queue(size_t fragment_bytes);

  /// A frame the machine handed out (whole; never a Fragment).
  void push(v1::Frame f);
  /// Nothing queued and no frame part-written.
  bool empty() const;
  /// The next frame to write (a whole frame or a piece), or nullopt when empty. Call it
  /// again only after written() for the previous one.
  std::optional<v1::Frame> next();
  /// The frame next() last returned is written. Returns how many of the machine's
  /// frames became fully written, counted in push order: a frame that overtook a
  /// part-written one is counted once that one is done too (the machines count
  /// written frames in the order they handed them out).
  size_t written();

  /// Frames cut into pieces so far, and overtaking writes (for tests and stats).
  uint64_t fragmented() const { return fragmented_; }
  uint64_t overtaken() const { return overtaken_; }

private:
  struct queued {
    v1::Frame frame;
    uint64_t order = 0;
    size_t bytes = 0;
  };
  struct big_frame {
    v1::Frame shape;  ///< the frame without its records (what frames_commute looks at)
    uint64_t order = 0;
    uint64_t id = 0;
    std::string bytes;
    size_t offset = 0;
    uint32_t index = 0;
  };
  std::optional<v1::Frame> next_piece();

  size_t fragment_bytes_;
  std::deque<queued> waiting_;
  std::optional<big_frame> big_;
  bool overtook_last_ = false;
  uint64_t next_order_ = 1;
  uint64_t next_id_ = 1;
  std::deque<std::pair<uint64_t, bool>> handed_;  ///< (order, written) in push order
  std::optional<uint64_t> completes_;             ///< order the last next() completes, if any
  uint64_t fragmented_ = 0;
  uint64_t overtaken_ = 0;
};

/// Puts the pieces of a fragmented frame back together on the reading side.
class reassembler {
public:
  /// max_frame_bytes: largest frame accepted from pieces (resource_exhausted beyond).
  explicit reassembler(size_t max_frame_bytes);

  /// A frame read from the peer. Not a Fragment: returned as it is. A piece: kept, and
  /// nullopt returned, until the last piece, which returns the whole frame. Errors
  /// (the session must end): invalid_argument for a piece out of order, an empty piece
  /// that is not the last, a new fragmented frame while one is unfinished, bytes that
  /// do not parse, a Fragment inside a Fragment; resource_exhausted past the limit.
  result<std::optional<v1::Frame>> take(v1::Frame f);
  /// A fragmented frame is part-read.
  bool in_progress() const { return in_progress_; }

private:
  size_t max_frame_bytes_;
  bool in_progress_ = false;
  uint64_t frame_ = 0;
  uint32_t next_index_ = 0;
  std::string bytes_;
};

} // namespace possync::actors
