#include "possync/core/policy.hpp"

#include <algorithm>
#include <tuple>

#include "possync/v1/pos.pb.h"

namespace possync::core {

const char* to_string(policy p) noexcept {
  switch (p) {
    case policy::immutable: return "immutable";
    case policy::counter: return "counter";
    case policy::field_merge: return "field_merge";
    case policy::lww: return "lww";
    case policy::hq_wins: return "hq_wins";
    case policy::manual: return "manual";
  }
  return "unknown";
}

std::optional<policy> parse_policy(std::string_view name) {
  for (auto p : {policy::immutable, policy::counter, policy::field_merge, policy::lww, policy::hq_wins,
                 policy::manual})
    if (name == to_string(p)) return p;
  return std::nullopt;
}

const char* to_string(tie_rule t) noexcept {
  switch (t) {
    case tie_rule::lww: return "lww";
    case tie_rule::hq_wins: return "hq_wins";
  }
  return "unknown";
}

namespace {

// A total order on version content, so that equal clocks (only possible with
// corrupt or hand-made data) still pick the same winner on every node.
bool lww_less(const version& a, const version& b) {
  return std::tie(a.hlc, a.id, a.tombstone, a.body) < std::tie(b.hlc, b.id, b.tombstone, b.body);
}

bool hq_less(const version& a, const version& b) {
  if (a.hq != b.hq) return !a.hq;
  return lww_less(a, b);
}

const version* pick(const record& r, bool hq_first) {
  const version* best = nullptr;
  for (const auto& v : r.versions)
    if (!best || (hq_first ? hq_less(*best, v) : lww_less(*best, v))) best = &v;
  return best;
}

resolved_view view_of_winner(const record& r, const version& w) {
  resolved_view out;
  out.siblings = r.versions.size();
  out.exists = !w.tombstone;
  out.tombstone = w.tombstone;
  if (!w.tombstone) out.body = w.body;
  out.hlc = w.hlc;
  out.fields = w.fields;
  out.winner = w.id;
  return out;
}

bool bodies_differ(const record& r) {
  for (size_t i = 1; i < r.versions.size(); ++i) {
    const auto& a = r.versions[0];
    const auto& b = r.versions[i];
    if (a.tombstone != b.tombstone || a.body != b.body) return true;
  }
  return false;
}

// -- field_merge ------------------------------------------------------------------

struct candidate {
  const version* from;
  std::optional<std::string> bytes;  // nullopt: field absent ("cleared")
  field_stamp stamp;
};

bool stamp_less(const field_stamp& a, const field_stamp& b, tie_rule tie) {
  if (tie == tie_rule::hq_wins && a.hq != b.hq) return !a.hq;
  return std::tie(a.hlc, a.origin, a.hq) < std::tie(b.hlc, b.origin, b.hq);
}

bool candidate_less(const candidate& a, const candidate& b, tie_rule tie) {
  if (stamp_less(a.stamp, b.stamp, tie)) return true;
  if (stamp_less(b.stamp, a.stamp, tie)) return false;
  return a.bytes < b.bytes;  // same stamp, different bytes: corrupt input, still deterministic
}

struct field_merge_result {
  resolved_view view;
  std::vector<uint32_t> conflicted_fields;
};

field_merge_result merge_fields(const record& r, tie_rule tie) {
  field_merge_result res;
  auto& out = res.view;
  out.siblings = r.versions.size();

  std::vector<const version*> live;
  for (const auto& v : r.versions)
    if (!v.tombstone) live.push_back(&v);
  if (live.empty()) {
    if (const version* w = pick(r, false)) {
      out = view_of_winner(r, *w);
      out.fields.clear();
    }
    return res;
  }

  // Unparsable bodies contribute no fields (validation rejects them before storage;
  // this only keeps a read total).
  std::vector<std::map<uint32_t, std::string>> parsed(live.size());
  std::vector<uint32_t> numbers;
  for (size_t i = 0; i < live.size(); ++i) {
    if (auto split = split_fields(live[i]->body)) parsed[i] = std::move(*split);
    for (const auto& [f, _] : parsed[i]) numbers.push_back(f);
    for (const auto& [f, _] : live[i]->fields) numbers.push_back(f);
  }
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());

  std::map<uint32_t, std::string> body;
  bool any_stamp = false;
  hlc_timestamp max_hlc;
  for (uint32_t f : numbers) {
    std::vector<candidate> cands;
    for (size_t i = 0; i < live.size(); ++i) {
      const version& v = *live[i];
      auto bytes_it = parsed[i].find(f);
      auto stamp_it = v.fields.find(f);
      std::optional<std::string> bytes;
      if (bytes_it != parsed[i].end()) bytes = bytes_it->second;
      if (stamp_it != v.fields.end()) {
        cands.push_back({&v, std::move(bytes), stamp_it->second});
      } else if (bytes) {
        // Present but unstamped: set by the version's own write.
        cands.push_back({&v, std::move(bytes), field_stamp{v.id, v.hlc, v.hq}});
      }
      // Absent and unstamped: the version has no opinion on this field.
    }
    // A candidate is obsolete when another sibling saw the write that set it and
    // holds a different stamp for the field (it overwrote or cleared it since).
    std::vector<const candidate*> survivors;
    for (const auto& c : cands) {
      bool dropped = false;
      for (const auto& o : cands) {
        if (o.from != c.from && !(o.stamp == c.stamp) && o.from->past.covers(c.stamp.origin)) {
          dropped = true;
          break;
        }
      }
      if (!dropped) survivors.push_back(&c);
    }
    if (survivors.empty())  // only with inconsistent stamps; fall back to the tie rule
      for (const auto& c : cands) survivors.push_back(&c);

    const candidate* win = survivors.front();
    size_t distinct = 0;
    std::vector<const field_stamp*> seen;
    for (const candidate* c : survivors) {
      if (candidate_less(*win, *c, tie)) win = c;
      bool dup = false;
      for (const field_stamp* s : seen) dup = dup || *s == c->stamp;
      if (!dup) {
        seen.push_back(&c->stamp);
        ++distinct;
      }
    }
    if (distinct > 1) res.conflicted_fields.push_back(f);
    if (win->bytes) body[f] = *win->bytes;
    out.fields[f] = win->stamp;
    if (!any_stamp || max_hlc < win->stamp.hlc) max_hlc = win->stamp.hlc;
    any_stamp = true;
  }
  if (!any_stamp)
    for (const version* v : live)
      if (max_hlc < v->hlc) max_hlc = v->hlc;

  out.exists = true;
  out.tombstone = false;
  out.conflicted = !res.conflicted_fields.empty();
  out.body = join_fields(body);
  out.hlc = max_hlc;
  if (r.versions.size() == 1) out.winner = r.versions.front().id;
  return res;
}

// Minimal protobuf wire reader: a varint of at most 10 bytes.
bool read_varint(std::string_view in, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (pos >= in.size()) return false;
    uint8_t b = static_cast<uint8_t>(in[pos++]);
    if (shift == 63 && (b & 0x7e)) return false;  // overflows 64 bits
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

} // namespace

resolved_view resolve(const record& r, policy p, tie_rule tie) {
  resolved_view out;
  out.siblings = r.versions.size();
  if (r.versions.empty()) return out;
  switch (p) {
    case policy::immutable:
    case policy::manual:
      out = view_of_winner(r, *pick(r, false));
      out.conflicted = bodies_differ(r);
      return out;
    case policy::lww: return view_of_winner(r, *pick(r, false));
    case policy::hq_wins: return view_of_winner(r, *pick(r, true));
    case policy::counter: {
      out.exists = true;
      out.body = encode_counter(counter_of(r));
      for (const auto& v : r.versions)
        if (out.hlc < v.hlc) out.hlc = v.hlc;
      if (r.versions.size() == 1) out.winner = r.versions.front().id;
      return out;
    }
    case policy::field_merge: return merge_fields(r, tie).view;
  }
  return out;
}

std::optional<conflict_info> detect_conflict(const record& r, policy p, tie_rule tie) {
  switch (p) {
    case policy::immutable:
    case policy::manual:
      if (bodies_differ(r)) return conflict_info{"siblings kept", {}};
      return std::nullopt;
    case policy::lww:
    case policy::hq_wins:
      if (r.versions.size() > 1) return conflict_info{to_string(p), {}};
      return std::nullopt;
    case policy::counter: return std::nullopt;
    case policy::field_merge: {
      // One version has one opinion per field: nothing to tie (and merging its fields
      // was most of the cost of applying a downloaded product).
      if (r.versions.size() < 2) return std::nullopt;
      auto res = merge_fields(r, tie);
      if (res.conflicted_fields.empty()) return std::nullopt;
      return conflict_info{std::string("field tie: ") + to_string(tie), std::move(res.conflicted_fields)};
    }
  }
  return std::nullopt;
}

// -- counter ---------------------------------------------------------------------

int64_t pn_counter::value() const {
  // Unsigned arithmetic: wraps instead of overflowing (only reachable with absurd totals).
  uint64_t sum = 0;
  for (const auto& [node, e] : entries) sum += uint64_t(e.first) - uint64_t(e.second);
  return static_cast<int64_t>(sum);
}

void pn_counter::merge(const pn_counter& other) {
  for (const auto& [node, e] : other.entries) {
    auto [it, inserted] = entries.emplace(node, e);
    if (!inserted) {
      it->second.first = std::max(it->second.first, e.first);
      it->second.second = std::max(it->second.second, e.second);
    }
  }
}

std::string encode_counter(const pn_counter& c) {
  v1::StockCounter msg;
  for (const auto& [node, e] : c.entries) {
    auto* entry = msg.add_entries();
    entry->set_node(node);
    entry->set_inc(e.first);
    entry->set_dec(e.second);
  }
  return msg.SerializeAsString();
}

result<pn_counter> decode_counter(std::string_view body) {
  // Every stock record received is decoded (to validate it, then to merge it), with an
  // entry per register that sold the product: one arena for the message and an
  // in-order insert (encode_counter writes entries by ascending node) instead of an
  // allocation per parsed entry and a temporary counter per merge.
  google::protobuf::Arena arena;
  auto* msg = google::protobuf::Arena::CreateMessage<v1::StockCounter>(&arena);
  if (!msg->ParseFromArray(body.data(), static_cast<int>(body.size())))
    return error(errc::invalid_argument, "counter body is not a possync.v1.StockCounter");
  pn_counter c;
  for (const auto& e : msg->entries()) {
    if (e.node() == 0) return error(errc::invalid_argument, "counter entry with node 0");
    if (e.inc() < 0 || e.dec() < 0 || e.inc() > counter_entry_max || e.dec() > counter_entry_max)
      return error(errc::invalid_argument,
                   "counter entry of node " + node_id_to_string(e.node()) + " has a " +
                       (e.inc() < 0 || e.dec() < 0 ? "negative" : "too large") + " total (inc " +
                       std::to_string(e.inc()) + ", dec " + std::to_string(e.dec()) + "; at most " +
                       std::to_string(counter_entry_max) + ")");
    if (c.entries.empty() || c.entries.rbegin()->first < e.node()) {
      c.entries.emplace_hint(c.entries.end(), e.node(), std::make_pair(e.inc(), e.dec()));
      continue;
    }
    auto [it, inserted] = c.entries.emplace(e.node(), std::make_pair(e.inc(), e.dec()));
    if (!inserted) { // a repeated node keeps its per-field max
      it->second.first = std::max(it->second.first, e.inc());
      it->second.second = std::max(it->second.second, e.dec());
    }
  }
  return c;
}

error refuse_from_downstream(const record& before, const record& incoming, const record& merged,
                             const merge_outcome& m, policy p) {
  auto refuse = [&](const std::string& why) {
    return error(errc::invalid_argument,
                 "record " + incoming.key.to_string() + " from downstream refused: " + why);
  };
  if (p != policy::immutable && p != policy::counter) return {};
  auto held = [&](const version& v) {
    return std::any_of(before.versions.begin(), before.versions.end(),
                       [&](const version& b) { return b == v; });
  };
  for (const auto& v : incoming.versions) {
    if (held(v)) continue;
    if (v.tombstone) return refuse("a delete of a " + std::string(to_string(p)) + " record");
    if (p == policy::immutable && !v.past.empty())
      return refuse("a version of an immutable record with a causal past (" + v.past.to_string() + ")");
  }
  if (p == policy::immutable && m.divergent_duplicate)
    return refuse("a second, different content for a version already held");
  if (p == policy::counter && (m.obsoleted != 0 || m.divergent_duplicate)) {
    // Versions were replaced: what replaced them must count at least what they did.
    const auto was = counter_of(before), now = counter_of(merged);
    for (const auto& [node, e] : was.entries) {
      auto it = now.entries.find(node);
      const std::pair<int64_t, int64_t> got =
          it == now.entries.end() ? std::pair<int64_t, int64_t>{0, 0} : it->second;
      if (got.first < e.first || got.second < e.second)
        return refuse("it lowers the entry of node " + node_id_to_string(node) + " (inc " +
                      std::to_string(e.first) + " -> " + std::to_string(got.first) + ", dec " +
                      std::to_string(e.second) + " -> " + std::to_string(got.second) + ")");
    }
  }
  return {};
}

pn_counter counter_of(const record& r) {
  pn_counter c;
  for (const auto& v : r.versions) {
    if (v.tombstone) continue;
    if (auto d = decode_counter(v.body)) c.merge(*d);
  }
  return c;
}

result<std::string> counter_add_body(const record& r, node_id self, int64_t delta) {
  pn_counter c = counter_of(r);
  auto& e = c.entries[self];
  int64_t& total = delta >= 0 ? e.first : e.second;
  // Both totals are at most counter_entry_max, so neither the sum nor -delta overflows
  // once delta is bounded too.
  const int64_t step = delta >= 0 ? delta : (delta == INT64_MIN ? counter_entry_max + 1 : -delta);
  if (step > counter_entry_max - total)
    return error(errc::out_of_range,
                 "counter " + r.key.to_string() + ": the " + (delta >= 0 ? "inc" : "dec") +
                     " total of node " + node_id_to_string(self) + " (" + std::to_string(total) + ") plus " +
                     std::to_string(step) + " would pass " + std::to_string(counter_entry_max));
  total += step;
  return encode_counter(c);
}

bool counter_fold_due(const record& r, node_id self, bool self_is_hq) {
  if (r.versions.size() < 2) return false;
  return std::none_of(r.versions.begin(), r.versions.end(),
                      [&](const version& v) { return v.hq && (!self_is_hq || v.id.node > self); });
}

// -- field_merge -------------------------------------------------------------------

result<std::map<uint32_t, std::string>> split_fields(std::string_view body) {
  std::map<uint32_t, std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t start = pos;
    uint64_t tag = 0;
    if (!read_varint(body, pos, tag))
      return error(errc::invalid_argument, "malformed field tag at byte " + std::to_string(start));
    const uint64_t number = tag >> 3;
    const unsigned wire = tag & 7;
    if (number == 0 || number > 0x1fffffff)
      return error(errc::invalid_argument,
                   "invalid field number " + std::to_string(number) + " at byte " + std::to_string(start));
    uint64_t len = 0;
    switch (wire) {
      case 0: {
        uint64_t ignored = 0;
        if (!read_varint(body, pos, ignored))
          return error(errc::invalid_argument, "truncated varint in field " + std::to_string(number));
        break;
      }
      case 1: len = 8; break;
      case 5: len = 4; break;
      case 2:
        if (!read_varint(body, pos, len))
          return error(errc::invalid_argument, "truncated length of field " + std::to_string(number));
        break;
      case 3:
      case 4:
        return error(errc::invalid_argument,
                     "field " + std::to_string(number) + " uses groups (wire type " + std::to_string(wire) +
                         "), which are not supported");
      default:
        return error(errc::invalid_argument,
                     "field " + std::to_string(number) + " has invalid wire type " + std::to_string(wire));
    }
    if (len > body.size() - pos)
      return error(errc::invalid_argument, "field " + std::to_string(number) + " is truncated (needs " +
                                               std::to_string(len) + " bytes, " +
                                               std::to_string(body.size() - pos) + " left)");
    pos += len;
    out[static_cast<uint32_t>(number)].append(body.substr(start, pos - start));
  }
  return out;
}

std::string join_fields(const std::map<uint32_t, std::string>& fields) {
  std::string out;
  for (const auto& [f, bytes] : fields) out += bytes;
  return out;
}

result<std::map<uint32_t, field_stamp>> stamp_fields(const resolved_view& before, std::string_view new_body,
                                                     const dot& new_dot, const hlc_timestamp& hlc, bool hq) {
  auto after = split_fields(new_body);
  if (!after) return error(errc::invalid_argument, "new body: " + after.err().message);
  std::map<uint32_t, std::string> old;
  if (before.exists) {
    auto split = split_fields(before.body);
    if (!split) return error(errc::invalid_argument, "body read before the write: " + split.err().message);
    old = std::move(*split);
  }
  // Fields stamped but absent from both bodies were cleared earlier: keep that stamp
  // so the clear still beats older concurrent values.
  std::map<uint32_t, field_stamp> out;
  auto visit = [&](uint32_t f) {
    if (out.count(f)) return;
    auto a = old.find(f);
    auto b = after->find(f);
    bool same = (a == old.end()) == (b == after->end()) && (a == old.end() || a->second == b->second);
    if (!same) {
      out[f] = field_stamp{new_dot, hlc, hq};
    } else if (auto s = before.fields.find(f); s != before.fields.end()) {
      out[f] = s->second;
    }
  };
  for (const auto& [f, _] : old) visit(f);
  for (const auto& [f, _] : *after) visit(f);
  if (before.exists)
    for (const auto& [f, _] : before.fields) visit(f);
  return out;
}

} // namespace possync::core
