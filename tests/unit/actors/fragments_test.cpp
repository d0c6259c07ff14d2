// Large frames in pieces: which frames may overtake which, the write queue's cutting,
// overtaking and written() counting, and the reading side's reassembly and its errors.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "possync/actors/fragments.hpp"

namespace {

using possync::errc;
using possync::actors::frames_commute;
using possync::actors::reassembler;
using possync::actors::write_queue;
namespace v1 = possync::v1;

/// A Push of `lane` whose one record carries `body_bytes` of body (so its size is known).
v1::Frame push(uint32_t lane, uint64_t seq, size_t body_bytes = 10) {
  v1::Frame f;
  auto* p = f.mutable_push();
  p->set_lane(lane);
  p->set_first_seq(seq);
  p->set_last_seq(seq);
  p->add_records()->add_versions()->set_body(std::string(body_bytes, 'x'));
  return f;
}

v1::Frame ack(uint32_t lane, uint64_t seq) {
  v1::Frame f;
  f.mutable_ack()->set_lane(lane);
  f.mutable_ack()->set_seq(seq);
  return f;
}

v1::Frame changes(size_t body_bytes = 10) {
  v1::Frame f;
  f.mutable_changes()->add_records()->add_versions()->set_body(std::string(body_bytes, 'c'));
  return f;
}

v1::Frame heartbeat() {
  v1::Frame f;
  f.mutable_heartbeat()->set_lag_records(1);
  return f;
}

v1::Frame hello() {
  v1::Frame f;
  f.mutable_hello()->set_node(1);
  return f;
}

v1::Frame error_frame() {
  v1::Frame f;
  f.mutable_error()->set_message("bye");
  return f;
}

/// Everything the queue hands out until it is empty, acknowledging each write; the
/// written() counts are appended to `counts`.
std::vector<v1::Frame> drain(write_queue& q, std::vector<size_t>* counts = nullptr) {
  std::vector<v1::Frame> out;
  for (int guard = 0; guard < 100000 && !q.empty(); ++guard) {
    auto f = q.next();
    if (!f) break;
    out.push_back(std::move(*f));
    size_t n = q.written();
    if (counts) counts->push_back(n);
  }
  return out;
}

/// Reads `wire` through a reassembler and returns the whole frames in arrival order.
std::vector<v1::Frame> reassemble(const std::vector<v1::Frame>& wire, size_t max = 8u << 20) {
  reassembler r(max);
  std::vector<v1::Frame> whole;
  for (const auto& f : wire) {
    auto got = r.take(f);
    EXPECT_TRUE(got.has_value()) << got.err().message;
    if (got && *got) whole.push_back(std::move(**got));
  }
  EXPECT_FALSE(r.in_progress());
  return whole;
}

TEST(frames_commute, lanes_of_push_and_ack_commute_only_across_lanes) {
  EXPECT_TRUE(frames_commute(push(0, 1), push(3, 1)));
  EXPECT_FALSE(frames_commute(push(2, 1), push(2, 2)));
  EXPECT_TRUE(frames_commute(ack(0, 1), ack(1, 1)));
  EXPECT_FALSE(frames_commute(ack(1, 1), ack(1, 2)));
  EXPECT_TRUE(frames_commute(ack(1, 1), push(1, 1)));
  EXPECT_TRUE(frames_commute(ack(0, 1), changes()));
  EXPECT_TRUE(frames_commute(push(0, 1), changes()));
}

TEST(frames_commute, changes_keep_their_order_and_control_frames_commute_with_nothing) {
  EXPECT_FALSE(frames_commute(changes(), changes()));
  for (const auto& control : {hello(), error_frame()}) {
    EXPECT_FALSE(frames_commute(control, push(0, 1)));
    EXPECT_FALSE(frames_commute(push(0, 1), control));
    EXPECT_FALSE(frames_commute(control, heartbeat()));
    EXPECT_FALSE(frames_commute(control, changes()));
  }
  EXPECT_TRUE(frames_commute(heartbeat(), push(2, 1)));
  EXPECT_TRUE(frames_commute(changes(), heartbeat()));
  EXPECT_FALSE(frames_commute(heartbeat(), heartbeat()));
}

TEST(write_queue, small_frames_pass_whole_in_order) {
  write_queue q(1024);
  q.push(push(0, 1));
  q.push(push(3, 1));
  q.push(ack(1, 4));
  std::vector<size_t> counts;
  auto out = drain(q, &counts);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].push().lane(), 0u);
  EXPECT_EQ(out[1].push().lane(), 3u);
  EXPECT_EQ(out[2].ack().seq(), 4u);
  EXPECT_EQ(counts, (std::vector<size_t>{1, 1, 1}));
  EXPECT_EQ(q.fragmented(), 0u);
  EXPECT_FALSE(q.next().has_value());
}

TEST(write_queue, a_large_frame_goes_in_pieces_that_rebuild_it_exactly) {
  write_queue q(1000);
  const auto big = push(3, 7, 10500);
  q.push(big);
  std::vector<size_t> counts;
  auto out = drain(q, &counts);
  ASSERT_EQ(out.size(), 11u);  // ~10.5 KB in 1,000-byte pieces
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i].kind_case(), v1::Frame::kFragment);
    EXPECT_EQ(out[i].fragment().index(), i);
    EXPECT_EQ(out[i].fragment().last(), i + 1 == out.size());
    EXPECT_LE(out[i].fragment().data().size(), 1000u);
    EXPECT_EQ(counts[i], i + 1 == out.size() ? 1u : 0u) << "only the last piece completes the frame";
  }
  auto whole = reassemble(out);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].SerializeAsString(), big.SerializeAsString());
  EXPECT_EQ(q.fragmented(), 1u);
}

TEST(write_queue, zero_fragment_bytes_never_cuts) {
  write_queue q(0);
  q.push(push(3, 1, 100000));
  auto out = drain(q);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind_case(), v1::Frame::kPush);
}

TEST(write_queue, a_sale_overtakes_a_report_between_two_pieces) {
  write_queue q(1000);
  q.push(push(3, 1, 5000));  // the report
  q.push(push(0, 1));        // a sale queued behind it
  std::vector<size_t> counts;
  auto out = drain(q, &counts);
  ASSERT_GE(out.size(), 3u);
  EXPECT_EQ(out[0].kind_case(), v1::Frame::kFragment);
  ASSERT_EQ(out[1].kind_case(), v1::Frame::kPush) << "the sale goes right after the first piece";
  EXPECT_EQ(out[1].push().lane(), 0u);
  EXPECT_EQ(q.overtaken(), 1u);
  // The machine counts written frames in the order it handed them out: the sale's
  // write completes nothing until the report is done, then both count at once.
  EXPECT_EQ(counts[1], 0u);
  EXPECT_EQ(counts.back(), 2u);
  size_t total = 0;
  for (auto c : counts) total += c;
  EXPECT_EQ(total, 2u);
  auto whole = reassemble(out);
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_EQ(whole[0].push().lane(), 0u);
  EXPECT_EQ(whole[1].push().lane(), 3u);
}

TEST(write_queue, one_overtaking_frame_between_two_pieces_so_the_large_frame_still_moves) {
  write_queue q(1000);
  q.push(push(3, 1, 3500));
  for (uint64_t s = 1; s <= 10; ++s)
    q.push(push(0, s));
  auto out = drain(q);
  std::string kinds;
  for (const auto& f : out)
    kinds += f.kind_case() == v1::Frame::kFragment ? 'F' : 'P';
  EXPECT_EQ(kinds, "FPFPFPFPPPPPPP");
  // Pieces: 4; sales overtaking: one after each of the first three pieces, the rest after.
  ASSERT_EQ(out.size(), 14u);
  EXPECT_EQ(q.overtaken(), 3u);
  auto whole = reassemble(out);
  ASSERT_EQ(whole.size(), 11u);
  std::vector<uint64_t> sale_seqs;
  for (const auto& f : whole)
    if (f.push().lane() == 0) sale_seqs.push_back(f.push().first_seq());
  EXPECT_EQ(sale_seqs, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})) << "a lane keeps its order";
}

TEST(write_queue, same_lane_and_control_frames_never_overtake) {
  write_queue q(1000);
  q.push(push(3, 1, 5000));
  q.push(push(3, 2));   // same lane: must wait
  q.push(error_frame());  // control: must wait, and blocks what follows it
  q.push(push(0, 1));   // may not pass the Error ahead of it
  auto out = drain(q);
  EXPECT_EQ(q.overtaken(), 0u);
  auto whole = reassemble(out);
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[0].push().first_seq(), 1u);
  EXPECT_EQ(whole[1].push().first_seq(), 2u);
  EXPECT_EQ(whole[2].kind_case(), v1::Frame::kError);
  EXPECT_EQ(whole[3].push().lane(), 0u);
}

TEST(write_queue, a_frame_passes_only_frames_it_commutes_with) {
  write_queue q(1000);
  q.push(push(3, 1, 5000));
  q.push(push(0, 1));  // overtakes the report
  q.push(push(0, 2));  // may not pass push(0,1)... which is already gone, so it may go next
  q.push(push(1, 1));
  auto out = drain(q);
  auto whole = reassemble(out);
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[0].push().first_seq(), 1u);
  EXPECT_EQ(whole[0].push().lane(), 0u);
  EXPECT_EQ(whole[1].push().first_seq(), 2u);
  EXPECT_EQ(whole[1].push().lane(), 0u);
  EXPECT_EQ(whole[2].push().lane(), 1u);
  EXPECT_EQ(whole[3].push().lane(), 3u);
}

TEST(write_queue, a_large_frame_waiting_behind_another_is_not_an_overtaker) {
  write_queue q(1000);
  q.push(push(3, 1, 3000));
  q.push(push(0, 1, 3000));  // large: it goes in pieces after the first, not between its pieces
  auto out = drain(q);
  EXPECT_EQ(q.overtaken(), 0u);
  EXPECT_EQ(q.fragmented(), 2u);
  auto whole = reassemble(out);
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_EQ(whole[0].push().lane(), 3u);
  EXPECT_EQ(whole[1].push().lane(), 0u);
}

TEST(write_queue, frames_pushed_while_a_frame_is_in_pieces_are_counted_in_push_order) {
  write_queue q(1000);
  q.push(changes(4000));
  std::vector<size_t> counts;
  auto first = q.next();
  ASSERT_TRUE(first && first->kind_case() == v1::Frame::kFragment);
  counts.push_back(q.written());
  q.push(ack(0, 9));  // arrives while the Changes is part-written
  auto rest = drain(q, &counts);
  size_t total = 0;
  for (auto c : counts) total += c;
  EXPECT_EQ(total, 2u);
  EXPECT_EQ(counts[1], 0u) << "the ack overtook; it counts when the Changes is done";
  EXPECT_EQ(q.overtaken(), 1u);
  EXPECT_TRUE(q.empty());
}

TEST(reassembler, passes_whole_frames_through) {
  reassembler r(1 << 20);
  auto got = r.take(push(0, 1));
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->push().lane(), 0u);
  EXPECT_FALSE(r.in_progress());
}

v1::Frame piece(uint64_t frame, uint32_t index, bool last, std::string data) {
  v1::Frame f;
  auto* p = f.mutable_fragment();
  p->set_frame(frame);
  p->set_index(index);
  p->set_last(last);
  p->set_data(std::move(data));
  return f;
}

/// The serialization of `f` cut in two pieces of frame `id`.
std::vector<v1::Frame> two_pieces(const v1::Frame& f, uint64_t id) {
  auto bytes = f.SerializeAsString();
  auto half = bytes.size() / 2;
  return {piece(id, 0, false, bytes.substr(0, half)), piece(id, 1, true, bytes.substr(half))};
}

TEST(reassembler, refuses_a_piece_without_its_first) {
  reassembler r(1 << 20);
  auto got = r.take(piece(1, 1, true, "abc"));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.err().code, errc::invalid_argument);
}

TEST(reassembler, refuses_a_skipped_or_repeated_piece) {
  auto pieces = two_pieces(push(3, 1, 200), 1);
  {
    reassembler r(1 << 20);
    ASSERT_TRUE(r.take(pieces[0]).has_value());
    auto again = r.take(pieces[0]);
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.err().code, errc::invalid_argument);
  }
  {
    reassembler r(1 << 20);
    ASSERT_TRUE(r.take(pieces[0]).has_value());
    auto skip = r.take(piece(1, 2, true, "x"));
    ASSERT_FALSE(skip.has_value());
    EXPECT_EQ(skip.err().code, errc::invalid_argument);
  }
}

TEST(reassembler, refuses_a_new_frame_while_one_is_unfinished) {
  auto a = two_pieces(push(3, 1, 200), 1);
  auto b = two_pieces(push(3, 2, 200), 2);
  reassembler r(1 << 20);
  ASSERT_TRUE(r.take(a[0]).has_value());
  auto got = r.take(b[0]);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.err().code, errc::invalid_argument);
}

TEST(reassembler, refuses_an_empty_piece_that_is_not_the_last) {
  reassembler r(1 << 20);
  auto got = r.take(piece(1, 0, false, ""));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.err().code, errc::invalid_argument);
}

TEST(reassembler, refuses_more_than_the_largest_frame) {
  reassembler r(100);
  ASSERT_TRUE(r.take(piece(1, 0, false, std::string(60, 'a'))).has_value());
  auto got = r.take(piece(1, 1, false, std::string(60, 'a')));
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.err().code, errc::resource_exhausted);
}

TEST(reassembler, refuses_bytes_that_do_not_parse_and_a_fragment_inside_a_fragment) {
  {
    reassembler r(1 << 20);
    auto got = r.take(piece(1, 0, true, std::string("\xff\xff\xff\xff\xff", 5)));
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.err().code, errc::invalid_argument);
  }
  {
    reassembler r(1 << 20);
    auto inner = piece(9, 0, true, "x");
    auto got = r.take(piece(1, 0, true, inner.SerializeAsString()));
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.err().code, errc::invalid_argument);
  }
}

TEST(reassembler, takes_frames_between_pieces_and_the_next_fragmented_frame_after) {
  auto a = two_pieces(push(3, 1, 200), 1);
  auto b = two_pieces(push(3, 2, 200), 2);
  auto got = reassemble({a[0], push(0, 5), a[1], b[0], b[1]});
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].push().lane(), 0u);
  EXPECT_EQ(got[1].push().first_seq(), 1u);
  EXPECT_EQ(got[2].push().first_seq(), 2u);
}

} // namespace
