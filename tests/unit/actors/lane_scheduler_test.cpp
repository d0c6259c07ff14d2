#include <gtest/gtest.h>

#include "possync/actors/lane_scheduler.hpp"

namespace possync::actors {
namespace {

TEST(LaneScheduler, NothingToDo) {
  lane_scheduler s(8);
  EXPECT_FALSE(s.pick({false, false, false, false}));
}

TEST(LaneScheduler, StrictPriorityWithoutContention) {
  lane_scheduler s(8);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(*s.pick({false, false, true, false}), 2);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(*s.pick({true, false, false, false}), 0);
}

TEST(LaneScheduler, LowerLanesGetOneSlotInEight) {
  lane_scheduler s(8);
  for (int i = 0; i < 800; ++i)
    s.pick({true, true, true, true});
  EXPECT_EQ(s.picks()[0], 700u);
  // The guaranteed slot rotates: lane 3 progresses while lanes 0 and 1 are busy.
  EXPECT_GT(s.picks()[1], 30u);
  EXPECT_GT(s.picks()[2], 30u);
  EXPECT_GT(s.picks()[3], 30u);
  EXPECT_EQ(s.picks()[1] + s.picks()[2] + s.picks()[3], 100u);
}

TEST(LaneScheduler, BusyTopLaneNeverStarvesTheOnlyLowerLane) {
  lane_scheduler s(4);
  int lane3 = 0;
  for (int i = 0; i < 40; ++i)
    lane3 += *s.pick({true, false, false, true}) == 3;
  EXPECT_EQ(lane3, 10);
}

TEST(LaneScheduler, EveryOneIsRoundRobin) {
  lane_scheduler s(1);
  std::vector<uint8_t> got;
  for (int i = 0; i < 6; ++i)
    got.push_back(*s.pick({true, false, true, true}));
  EXPECT_EQ(got, (std::vector<uint8_t>{0, 2, 3, 0, 2, 3}));
}

TEST(UrgentHold, HoldsWhileUrgentForAtMostItsBound) {
  urgent_hold h(20);
  EXPECT_FALSE(h.holding(false, 1000));
  EXPECT_TRUE(h.holding(true, 1000));
  EXPECT_TRUE(h.holding(true, 1019));
  EXPECT_FALSE(h.holding(true, 1020)); // 20 ms: lower lanes go on
  EXPECT_EQ(h.holds(), 1u);
}

TEST(UrgentHold, LowerLanesKeepAsMuchTimeAsTheHoldTook) {
  urgent_hold h(20);
  EXPECT_TRUE(h.holding(true, 0));
  EXPECT_FALSE(h.holding(true, 20)); // bound reached
  EXPECT_FALSE(h.holding(true, 39)); // 20 ms free before the next hold
  EXPECT_TRUE(h.holding(true, 40));
  EXPECT_FALSE(h.holding(false, 45)); // the sale landed after 5 ms
  EXPECT_FALSE(h.holding(true, 49));  // 5 ms free
  EXPECT_TRUE(h.holding(true, 50));
  EXPECT_EQ(h.holds(), 3u);
}

TEST(UrgentHold, ZeroNeverHoldsAndAClockSetBackEndsAHold) {
  urgent_hold never(0);
  EXPECT_FALSE(never.holding(true, 5));
  urgent_hold h(20);
  EXPECT_TRUE(h.holding(true, 1'000'000));
  EXPECT_FALSE(h.holding(true, 1'000'000 - 3'600'000)); // an hour back
}

} // namespace
} // namespace possync::actors
