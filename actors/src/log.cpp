// Structured log events over spdlog.

#include "possync/actors/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include <spdlog/spdlog.h>

namespace possync::log {

namespace {

std::atomic<format> fmt_{format::text};

const char* name(level l) {
  switch (l) {
  case level::debug: return "debug";
  case level::info: return "info";
  case level::warn: return "warn";
  case level::error: return "error";
  }
  return "info";
}

spdlog::level::level_enum to_spd(level l) {
  switch (l) {
  case level::debug: return spdlog::level::debug;
  case level::info: return spdlog::level::info;
  case level::warn: return spdlog::level::warn;
  case level::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    }
  }
  out += '"';
}

/// logfmt value: bare when it has no space, quote or '='; else quoted like JSON.
void text_value(std::string& out, std::string_view s) {
  bool bare = !s.empty();
  for (char c : s) bare = bare && c != ' ' && c != '"' && c != '=' && c != '\n' && c != '\t';
  if (bare) out += s;
  else json_string(out, s);
}

} // namespace

void set_format(format f) {
  fmt_ = f;
  if (f == format::json) spdlog::set_pattern("%v");
}

format current_format() {
  return fmt_.load();
}

std::string render(format f, level lvl, std::string_view component, std::string_view message,
                   std::initializer_list<field> fields, int64_t now_ms) {
  std::string out;
  if (f == format::text) {
    out += message;
    out += " component=";
    text_value(out, component);
    for (const auto& x : fields) {
      out += ' ';
      out += x.key;
      out += '=';
      text_value(out, x.text);
    }
    return out;
  }
  char ts[32];
  const std::time_t secs = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  char full[48];
  std::snprintf(full, sizeof full, "%s.%03dZ", ts, static_cast<int>(now_ms % 1000));
  out += "{\"ts\":\"";
  out += full;
  out += "\",\"level\":\"";
  out += name(lvl);
  out += "\",\"msg\":";
  json_string(out, message);
  out += ",\"component\":";
  json_string(out, component);
  for (const auto& x : fields) {
    out += ',';
    json_string(out, x.key);
    out += ':';
    if (x.is_number) out += x.text;
    else json_string(out, x.text);
  }
  out += '}';
  return out;
}

void event(level lvl, std::string_view component, std::string_view message, std::initializer_list<field> fields) {
  auto logger = spdlog::default_logger_raw();
  if (!logger || !logger->should_log(to_spd(lvl))) return;
  using namespace std::chrono;
  const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  logger->log(to_spd(lvl), "{}", render(fmt_.load(), lvl, component, message, fields, now));
}

} // namespace possync::log
