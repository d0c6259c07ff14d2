// Large frames in pieces: write_queue and reassembler.

#include "possync/actors/fragments.hpp"

#include <algorithm>
#include <utility>

namespace possync::actors {

namespace {

using kind = v1::Frame::KindCase;

bool data_frame(kind k) { return k == v1::Frame::kPush || k == v1::Frame::kAck || k == v1::Frame::kChanges; }

/// What frames_commute needs of a frame: its kind and lane, without the records.
v1::Frame shape_of(const v1::Frame& f) {
  v1::Frame s;
  switch (f.kind_case()) {
  case v1::Frame::kPush: s.mutable_push()->set_lane(f.push().lane()); break;
  case v1::Frame::kAck: s.mutable_ack()->set_lane(f.ack().lane()); break;
  case v1::Frame::kChanges: s.mutable_changes(); break;
  case v1::Frame::kHeartbeat: s.mutable_heartbeat(); break;
  default: s.mutable_error(); break;  // commutes with nothing, like the frame itself
  }
  return s;
}

} // namespace

bool frames_commute(const v1::Frame& a, const v1::Frame& b) {
  const kind ka = a.kind_case(), kb = b.kind_case();
  if (ka == v1::Frame::kHeartbeat || kb == v1::Frame::kHeartbeat)
    return (ka == v1::Frame::kHeartbeat ? data_frame(kb) : data_frame(ka));
  if (!data_frame(ka) || !data_frame(kb)) return false;
  if (ka != kb) return true;
  switch (ka) {
  case v1::Frame::kPush: return a.push().lane() != b.push().lane();
  case v1::Frame::kAck: return a.ack().lane() != b.ack().lane();
  default: return false;  // Changes among themselves: cursors move in order
  }
}

// -- write_queue --------------------------------------------------------------------

write_queue::write_queue(size_t fragment_bytes) : fragment_bytes_(fragment_bytes) {}

void write_queue::push(v1::Frame f) {
  queued q;
  q.bytes = f.ByteSizeLong();
  q.frame = std::move(f);
  q.order = next_order_++;
  handed_.emplace_back(q.order, false);
  waiting_.push_back(std::move(q));
}

bool write_queue::empty() const { return waiting_.empty() && !big_; }

std::optional<v1::Frame> write_queue::next() {
  completes_.reset();
  if (big_) {
    if (!overtook_last_) {
      // The first waiting frame that is small and commutes with the part-written frame
      // and with every frame ahead of it in the queue.
      for (size_t i = 0; i < waiting_.size(); ++i) {
        const auto& q = waiting_[i];
        bool ok = q.bytes <= fragment_bytes_ && frames_commute(q.frame, big_->shape);
        for (size_t j = 0; ok && j < i; ++j)
          ok = frames_commute(q.frame, waiting_[j].frame);
        if (!ok) continue;
        v1::Frame f = std::move(waiting_[i].frame);
        completes_ = waiting_[i].order;
        waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(i));
        overtook_last_ = true;
        ++overtaken_;
        return f;
      }
    }
    return next_piece();
  }
  if (waiting_.empty()) return std::nullopt;
  queued q = std::move(waiting_.front());
  waiting_.pop_front();
  if (fragment_bytes_ == 0 || q.bytes <= fragment_bytes_ || q.frame.kind_case() == v1::Frame::kFragment) {
    completes_ = q.order;
    return std::move(q.frame);
  }
  big_frame b;
  b.shape = shape_of(q.frame);
  b.order = q.order;
  b.id = next_id_++;
  b.bytes = q.frame.SerializeAsString();
  big_ = std::move(b);
  ++fragmented_;
  return next_piece();
}

std::optional<v1::Frame> write_queue::next_piece() {
  auto& b = *big_;
  const size_t n = std::min(fragment_bytes_, b.bytes.size() - b.offset);
  v1::Frame f;
  auto* p = f.mutable_fragment();
  p->set_frame(b.id);
  p->set_index(b.index++);
  p->set_data(b.bytes.substr(b.offset, n));
  b.offset += n;
  overtook_last_ = false;
  if (b.offset >= b.bytes.size()) {
    p->set_last(true);
    completes_ = b.order;
    big_.reset();
  }
  return f;
}

size_t write_queue::written() {
  if (!completes_) return 0;
  for (auto& h : handed_)
    if (h.first == *completes_) {
      h.second = true;
      break;
    }
  completes_.reset();
  size_t done = 0;
  while (!handed_.empty() && handed_.front().second) {
    handed_.pop_front();
    ++done;
  }
  return done;
}

// -- reassembler --------------------------------------------------------------------

reassembler::reassembler(size_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

result<std::optional<v1::Frame>> reassembler::take(v1::Frame f) {
  if (f.kind_case() != v1::Frame::kFragment) return std::optional<v1::Frame>(std::move(f));
  auto* p = f.mutable_fragment();
  if (!in_progress_) {
    if (p->index() != 0)
      return error(errc::invalid_argument, "Fragment " + std::to_string(p->index()) + " of frame " +
                                               std::to_string(p->frame()) + " without its first piece");
    in_progress_ = true;
    frame_ = p->frame();
    next_index_ = 0;
    bytes_.clear();
  } else if (p->frame() != frame_) {
    return error(errc::invalid_argument, "Fragment of frame " + std::to_string(p->frame()) + " while frame " +
                                             std::to_string(frame_) + " is unfinished");
  }
  if (p->index() != next_index_)
    return error(errc::invalid_argument, "Fragment " + std::to_string(p->index()) + " of frame " +
                                             std::to_string(frame_) + " where " + std::to_string(next_index_) +
                                             " was due");
  if (p->data().empty() && !p->last())
    return error(errc::invalid_argument, "empty Fragment " + std::to_string(p->index()) + " of frame " +
                                             std::to_string(frame_));
  if (bytes_.size() + p->data().size() > max_frame_bytes_)
    return error(errc::resource_exhausted, "fragmented frame " + std::to_string(frame_) + " exceeds " +
                                               std::to_string(max_frame_bytes_) + " bytes");
  bytes_ += p->data();
  ++next_index_;
  if (!p->last()) return std::optional<v1::Frame>();
  in_progress_ = false;
  v1::Frame whole;
  const bool parsed = whole.ParseFromString(bytes_);
  bytes_.clear();
  bytes_.shrink_to_fit();
  if (!parsed)
    return error(errc::invalid_argument, "fragmented frame " + std::to_string(frame_) + " does not parse");
  if (whole.kind_case() == v1::Frame::kFragment)
    return error(errc::invalid_argument, "fragmented frame " + std::to_string(frame_) + " is itself a Fragment");
  return std::optional<v1::Frame>(std::move(whole));
}

} // namespace possync::actors
