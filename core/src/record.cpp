#include "possync/core/record.hpp"

#include <algorithm>
#include <tuple>

#include "possync/core/proto_convert.hpp"

namespace possync::core {

namespace {

bool by_dot(const version& a, const version& b) {
  return a.id < b.id;
}

// Deterministic protobuf encoding of one version: the tie-break for two versions
// that claim the same dot.
std::string encode_version(const version& v) {
  v1::Version msg;
  to_proto(v, &msg);
  return serialize_deterministic(msg);
}

bool ptr_by_dot(const version* a, const version* b) {
  return a->id < b->id;
}

// Adds `v` to `pool` (sorted by dot). Of two different versions with one dot the
// one with the larger encoding stays, whatever the order they arrive in.
void add_version(std::vector<const version*>& pool, const version* v, bool& divergent) {
  auto it = std::lower_bound(pool.begin(), pool.end(), v, ptr_by_dot);
  if (it == pool.end() || (*it)->id != v->id) {
    pool.insert(it, v);
    return;
  }
  if (*it == v || **it == *v) return;
  divergent = true;
  if (encode_version(*v) > encode_version(**it)) *it = v;
}

} // namespace

bool operator<(const record_key& a, const record_key& b) {
  return std::tie(a.tenant, a.scope, a.collection, a.id) < std::tie(b.tenant, b.scope, b.collection, b.id);
}

std::string record_key::to_string() const {
  return tenant + "/" + scope + "/" + collection + "/" + id;
}

version_vector version::history() const {
  version_vector h = past;
  h.add(id);
  return h;
}

bool operator==(const version& a, const version& b) {
  return a.id == b.id && a.past == b.past && a.hlc == b.hlc && a.tombstone == b.tombstone && a.hq == b.hq &&
         a.body == b.body && a.fields == b.fields;
}

version_vector record::context() const {
  version_vector ctx;
  for (const auto& v : versions)
    ctx.merge(v.history());
  return ctx;
}

merge_outcome merge_into(record& target, const record& incoming) {
  merge_outcome out;
  // Works on pointers so that the common case, a state already contained, copies nothing.
  std::vector<const version*> before;
  before.reserve(target.versions.size());
  for (const auto& v : target.versions)
    before.push_back(&v);
  const bool was_sorted = std::is_sorted(before.begin(), before.end(), ptr_by_dot);
  if (!was_sorted) std::stable_sort(before.begin(), before.end(), ptr_by_dot);

  // The union, deduplicated by dot.
  std::vector<const version*> pool;
  pool.reserve(before.size() + incoming.versions.size());
  for (const version* v : before)
    add_version(pool, v, out.divergent_duplicate);
  for (const auto& v : incoming.versions)
    add_version(pool, &v, out.divergent_duplicate);

  // Drop every version another version's past covers. The test runs against the whole
  // union (not only the survivors), so the result is a function of the union alone.
  std::vector<const version*> kept;
  kept.reserve(pool.size());
  for (const version* v : pool) {
    bool covered = std::any_of(pool.begin(), pool.end(),
                               [&](const version* w) { return w->id != v->id && w->past.covers(v->id); });
    if (!covered) kept.push_back(v);
  }

  for (const version* v : kept) {
    auto it = std::lower_bound(before.begin(), before.end(), v, ptr_by_dot);
    if (it == before.end() || **it != *v) ++out.added;
  }
  for (const version* v : before) {
    auto it = std::lower_bound(kept.begin(), kept.end(), v, ptr_by_dot);
    if (it == kept.end() || (*it)->id != v->id) ++out.obsoleted;
  }
  out.changed = kept.size() != before.size() ||
                !std::equal(kept.begin(), kept.end(), before.begin(),
                            [](const version* a, const version* b) { return a == b || *a == *b; });
  if (!out.changed && was_sorted) return out;

  std::vector<version> next;
  next.reserve(kept.size());
  for (const version* v : kept)
    next.push_back(*v);
  target.versions = std::move(next);
  return out;
}

const version& apply_local_write(record& target, const write_spec& spec) {
  version v;
  v.past = spec.context ? *spec.context : target.context();

  // Highest counter of `writer` anywhere in the state, so the new dot is fresh even
  // if the writer's own earlier versions were replaced by others. The past is
  // included too, so the new dot can never be covered by its own past.
  uint64_t top = std::max(v.past.get(spec.writer), spec.counter_floor);
  for (const auto& s : target.versions) {
    if (s.id.node == spec.writer) top = std::max(top, s.id.counter);
    top = std::max(top, s.past.get(spec.writer));
  }
  v.id = dot{spec.writer, top + 1};
  v.hlc = spec.hlc;
  v.hq = spec.hq;
  v.tombstone = spec.tombstone;
  if (!spec.tombstone) v.body = spec.body;

  auto& vs = target.versions;
  vs.erase(std::remove_if(vs.begin(), vs.end(), [&](const version& s) { return v.past.covers(s.id); }),
           vs.end());
  std::sort(vs.begin(), vs.end(), by_dot);
  auto it = std::lower_bound(vs.begin(), vs.end(), v, by_dot);
  return *vs.insert(it, std::move(v));
}

} // namespace possync::core
