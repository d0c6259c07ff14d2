#pragma once
// Structured logs: one line per event, a message and fields (component, peer, lane,
// counts ...), through spdlog's default logger (the CLI sends it to stderr).
//
//   text (default): "session ended component=downlink peer=7000000000000071 records_up=12 result=ok"
//   json:           {"ts":"2026-12-04T18:52:01.123Z","level":"info","msg":"session ended",
//                    "component":"downlink","peer":"7000000000000071","records_up":12,"result":"ok"}
//
// Never pass secrets (tokens, keys, bodies) as fields: logs leave the machine.
// Thread-safe.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace possync::log {

enum class level : uint8_t { debug, info, warn, error };
enum class format : uint8_t { text, json };

/// Switches every later event's format (and, for json, the logger's line pattern).
void set_format(format f);
format current_format();

/// One field of an event.
struct field {
  field(std::string_view k, std::string_view v) : key(k), text(v) {}
  field(std::string_view k, const std::string& v) : key(k), text(v) {}
  field(std::string_view k, const char* v) : key(k), text(v ? v : "") {}
  field(std::string_view k, bool v) : key(k), is_number(true), text(v ? "true" : "false") {}
  template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
  field(std::string_view k, N v) : key(k), is_number(true), text(std::to_string(v)) {}
  std::string_view key;
  bool is_number = false;
  std::string text;
};

/// Logs `message` with `component` and `fields` at `lvl` (dropped below the logger's level).
void event(level lvl, std::string_view component, std::string_view message, std::initializer_list<field> fields = {});

/// The line event() would write, without the logger's own prefix in text format
/// (tests, and sinks that want it).
std::string render(format f, level lvl, std::string_view component, std::string_view message,
                   std::initializer_list<field> fields, int64_t now_ms);

} // namespace possync::log
