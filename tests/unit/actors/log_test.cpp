// Structured log lines: text (logfmt-like) and JSON, with quoting and escaping.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "possync/actors/log.hpp"

namespace possync::log {
namespace {

TEST(log, text_lines_carry_the_component_and_fields) {
  auto line = render(format::text, level::info, "downlink", "session ended",
                     {{"peer", "7000000000000071"}, {"records_up", uint64_t{12}}, {"result", "unavailable: link lost"}},
                     0);
  EXPECT_EQ(line, "session ended component=downlink peer=7000000000000071 records_up=12 "
                  "result=\"unavailable: link lost\"");
  // Empty values and values with '=' or quotes are quoted, never ambiguous.
  EXPECT_EQ(render(format::text, level::warn, "c", "m", {{"a", ""}, {"b", "x=\"y\""}}, 0),
            "m component=c a=\"\" b=\"x=\\\"y\\\"\"");
}

TEST(log, json_lines_parse_and_keep_types) {
  auto line = render(format::json, level::warn, "orders", "order failed",
                     {{"seq", 3}, {"kind", "reset"}, {"ok", false}, {"reason", "line\nbreak \"quoted\" \x01"}},
                     1796407507123);
  auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_EQ(j["ts"], "2026-12-04T18:05:07.123Z");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["msg"], "order failed");
  EXPECT_EQ(j["component"], "orders");
  EXPECT_EQ(j["seq"], 3);
  EXPECT_EQ(j["kind"], "reset");
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["reason"], "line\nbreak \"quoted\" \x01");
  EXPECT_EQ(line.find('\n'), std::string::npos);  // one line per event
}

} // namespace
} // namespace possync::log
