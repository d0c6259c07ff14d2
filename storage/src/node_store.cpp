// node_store: local writes, remote merges, indexes and reads of one space.

#include <algorithm>
#include <chrono>
#include <future>
#include <map>
#include <random>
#include <set>
#include <utility>

#include <google/protobuf/arena.h>
#include <rocksdb/iterator.h>
#include <rocksdb/slice.h>

#include "keys.hpp"
#include "node_store_impl.hpp"
#include "possync/core/policy.hpp"
#include "possync/core/proto_convert.hpp"
#include "possync/v1/pos.pb.h"
#include "possync/v1/store.pb.h"

namespace possync::storage {

namespace {

constexpr const char* product_type = "possync.v1.Product";
constexpr const char* sale_type = "possync.v1.Sale";
constexpr const char* return_type = "possync.v1.Return";
constexpr const char* movement_type = "possync.v1.StockMovement";
constexpr const char* stock_collection = "stock";
/// What a store's values look like. 2: version vectors packed (VersionVector.packed),
/// which a build of schema 1 would read as empty pasts. A store of a higher schema than
/// this build's is refused; a lower one is upgraded in place (its values are read as they are).
constexpr uint64_t schema_version = 2;

/// The writer's random source when none is injected.
class device_random final : public core::random_source {
public:
  device_random() {
    std::random_device rd;
    gen_.seed((uint64_t{rd()} << 32) ^ rd());
  }
  uint64_t next_u64() override { return gen_(); }

private:
  std::mt19937_64 gen_;
};

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    else if (c == '\0') c = ' ';
  }
  return out;
}

std::string encode_hlc(const core::hlc_timestamp& h) {
  v1::Hlc p;
  core::to_proto(h, &p);
  return p.SerializeAsString();
}

/// Iterator over [prefix, prefix_end(prefix)).
struct bounded_iter {
  std::string lower, upper;
  rocksdb::Slice lower_s, upper_s;
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it;
  bounded_iter(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, std::string prefix,
               const rocksdb::Snapshot* snap = nullptr)
      : lower(std::move(prefix)), upper(keys::prefix_end(lower)), lower_s(lower), upper_s(upper) {
    ro.iterate_lower_bound = &lower_s;
    if (!upper.empty()) ro.iterate_upper_bound = &upper_s;
    ro.snapshot = snap;
    it.reset(db->NewIterator(ro, cf));
  }
};

/// Releases a snapshot on scope exit.
struct snapshot_guard {
  rocksdb::DB* db;
  const rocksdb::Snapshot* snap;
  explicit snapshot_guard(rocksdb::DB* d) : db(d), snap(d->GetSnapshot()) {}
  ~snapshot_guard() { db->ReleaseSnapshot(snap); }
};

result<std::optional<uint64_t>> get_u64(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
  std::string v;
  auto s = db->Get(rocksdb::ReadOptions(), cf, key, &v);
  if (s.IsNotFound()) return std::optional<uint64_t>();
  if (!s.ok()) return map_status(s, "read");
  if (v.size() != 8) return error(errc::data_loss, "meta value has " + std::to_string(v.size()) + " bytes, expected 8");
  return std::optional<uint64_t>(keys::get_u64(v));
}

/// Sale.time_ms (field 11) read straight off the wire, without building the Sale:
/// the sale-time index needs only this field. nullopt if the bytes are anything but
/// plain well-formed wire data (the caller then parses the whole message).
std::optional<int64_t> scan_sale_time(std::string_view b) {
  constexpr uint32_t time_field = 11;
  static_assert(v1::Sale::kTimeMsFieldNumber == time_field, "Sale.time_ms moved");
  size_t i = 0;
  auto varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= b.size()) return false;
      auto c = static_cast<uint8_t>(b[i++]);
      v |= uint64_t{c & 0x7fu} << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  };
  int64_t time = 0;  // proto3 default when absent
  while (i < b.size()) {
    uint64_t tag = 0, v = 0;
    if (!varint(tag) || (tag >> 3) == 0 || tag > UINT32_MAX) return std::nullopt;
    switch (tag & 7) {
      case 0:
        if (!varint(v)) return std::nullopt;
        if ((tag >> 3) == time_field) time = static_cast<int64_t>(v);
        break;
      case 1:
        if ((tag >> 3) == time_field || b.size() - i < 8) return std::nullopt;
        i += 8;
        break;
      case 2:
        if ((tag >> 3) == time_field || !varint(v) || v > b.size() - i) return std::nullopt;
        i += static_cast<size_t>(v);
        break;
      case 5:
        if ((tag >> 3) == time_field || b.size() - i < 4) return std::nullopt;
        i += 4;
        break;
      default:
        return std::nullopt;
    }
  }
  return time;
}

/// Adds (product -> quantity) of sale/return lines.
template <class Items>
void sum_items(const Items& items, std::map<std::string, int64_t>& per_product) {
  for (const auto& it : items) {
    if (it.product_id().empty() || it.quantity() == 0) continue;
    per_product[it.product_id()] += it.quantity();
  }
}

result<std::vector<core::version>> decode_versions(
    const google::protobuf::RepeatedPtrField<v1::Version>& vs, const char* what) {
  std::vector<core::version> out;
  out.reserve(static_cast<size_t>(vs.size()));
  for (const auto& pv : vs) {
    auto v = core::from_proto(pv);
    if (!v) return error(errc::data_loss, std::string(what) + ": " + v.err().message);
    out.push_back(std::move(v).value());
  }
  return out;
}

/// Starts an asynchronous store call with a completion that fulfils a promise, and
/// waits for it: the synchronous members are this over their _async twins.
template <class T, class Start>
T wait_for(Start&& start) {
  auto pr = std::make_shared<std::promise<T>>();
  auto f = pr->get_future();
  start(std::function<void(T)>([pr](T v) { pr->set_value(std::move(v)); }));
  return f.get();
}

} // namespace

result<stored_record> decode_stored(std::string_view bytes, const core::record_key& key) {
  // In an arena: a product's versions hold a stamp per field, each a message of its own.
  google::protobuf::Arena arena;
  auto& sr = *google::protobuf::Arena::CreateMessage<v1::StoredRecord>(&arena);
  if (!sr.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return error(errc::data_loss, "stored record " + key.to_string() + " does not parse");
  stored_record out;
  out.rec.key = key;
  auto vs = decode_versions(sr.versions(), "stored record");
  if (!vs) return std::move(vs).err();
  out.rec.versions = std::move(vs).value();
  out.feed_seq = sr.feed_seq();
  if (sr.has_outbox_seq()) out.outbox_seq = sr.outbox_seq();
  out.exists = true;
  return out;
}

// -- request -----------------------------------------------------------------------

namespace {

class store_request final : public write_request {
public:
  store_request(node_store_impl* s, node_store_impl::prep_fn p, node_store_impl::done_fn d)
      : store_(s), prep_(std::move(p)), done_(std::move(d)) {
    participant = s;
  }
  status prepare(txn& t) override {
    changes_.clear();
    return prep_(t, changes_);
  }
  void finish(const status& s) override {
    if (!s && !changes_.empty()) store_->notify(changes_);
    if (done_) done_(s, std::move(changes_));
  }

private:
  node_store_impl* store_;
  node_store_impl::prep_fn prep_;
  node_store_impl::done_fn done_;
  std::vector<change> changes_;
};

} // namespace

// -- open / close --------------------------------------------------------------------

node_store_impl::node_store_impl(std::shared_ptr<database> db, store_options opts)
    : db_holder_(std::move(db)), db_(db_holder_->impl()), opts_(std::move(opts)), space_(opts_.space),
      feed_cache_(opts_.feed_cache_bytes) {}

result<std::unique_ptr<node_store_impl>> node_store_impl::open(std::shared_ptr<database> db, store_options opts) {
  if (!db) return error(errc::invalid_argument, "node_store::open: no database");
  if (!opts.clock)
    opts.clock = [] {
      return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    };
  if (!opts.rng) opts.rng = std::make_shared<device_random>();
  if (!opts.registry) opts.registry = std::make_shared<const core::collection_registry>(core::collection_registry::pos());

  std::unique_ptr<node_store_impl> s(new node_store_impl(std::move(db), std::move(opts)));
  s->reg_ = s->opts_.registry;
  for (const auto* info : s->reg_->list())
    s->collection_slot_.emplace(info->name, s->collection_slot_.size());
  s->collection_changes_ = std::make_unique<std::atomic<uint64_t>[]>(s->collection_slot_.size());
  if (!s->db_.claim_space(s->space_))
    return error(errc::failed_precondition, "space " + std::to_string(s->space_) + " is already open");
  s->space_claimed_ = true;

  rocksdb::DB* rdb = s->db_.db();
  auto* meta = s->db_.cf(cf_meta);
  auto stored_node = get_u64(rdb, meta, keys::meta(s->space_, "node_id"));
  if (!stored_node) return std::move(stored_node).err();
  auto encrypted = get_u64(rdb, meta, keys::meta(s->space_, "encrypted"));
  if (!encrypted) return std::move(encrypted).err();
  if (encrypted->value_or(0) != 0 && !s->opts_.cipher)
    return error(errc::failed_precondition, "this store is encrypted: give its keyring (encryption key)");
  if (encrypted->value_or(0) == 0 && s->opts_.cipher && stored_node->has_value())
    return error(errc::failed_precondition,
                 "this store was created without encryption; encryption is chosen when a store is created");
  auto stored_schema = get_u64(rdb, meta, keys::meta(s->space_, "schema_version"));
  if (!stored_schema) return std::move(stored_schema).err();
  if (stored_schema->value_or(0) > schema_version)
    return error(errc::failed_precondition, "this store was written by a newer possync (store schema " +
                                                std::to_string(**stored_schema) +
                                                "; this build reads up to " + std::to_string(schema_version) +
                                                ")");
  for (uint8_t l = 0; l < core::lane_count; ++l) {
    auto v = get_u64(rdb, meta, keys::meta(s->space_, "lane_seq/" + std::to_string(l)));
    if (!v) return std::move(v).err();
    s->durable_.lane_seq[l] = v->value_or(0);
  }
  for (auto [name, field] : {std::pair<const char*, uint64_t*>{"conflict_seq", &s->durable_.conflict_seq},
                             std::pair<const char*, uint64_t*>{"audit_seq", &s->durable_.audit_seq},
                             std::pair<const char*, uint64_t*>{"dot_floor", &s->durable_.dot_floor},
                             std::pair<const char*, uint64_t*>{"counter_node", &s->durable_.counter_node}}) {
    auto v = get_u64(rdb, meta, keys::meta(s->space_, name));
    if (!v) return std::move(v).err();
    *field = v->value_or(0);
  }
  {
    std::string v;
    auto st = rdb->Get(rocksdb::ReadOptions(), meta, keys::meta(s->space_, "hlc"), &v);
    if (st.ok()) {
      v1::Hlc h;
      if (!h.ParseFromString(v)) return error(errc::data_loss, "meta hlc does not parse");
      s->durable_.hlc = core::from_proto(h);
    } else if (!st.IsNotFound()) {
      return map_status(st, "open store");
    }
  }
  // Count what waits in the outbox; the lane counter is at least the newest entry.
  for (uint8_t l = 0; l < core::lane_count; ++l) {
    bounded_iter bi(rdb, s->db_.cf(cf_outbox), keys::outbox_prefix(s->space_, l));
    uint64_t n = 0, first = 0, last = 0;
    for (bi.it->SeekToFirst(); bi.it->Valid(); bi.it->Next()) {
      ++n;
      last = keys::get_u64(bi.it->key().ToStringView(), bi.lower.size());
      if (n == 1) first = last;
    }
    if (!bi.it->status().ok()) return map_status(bi.it->status(), "open store");
    s->durable_.pending[l] = n;
    s->durable_.outbox_head[l] = last;
    s->durable_.lane_seq[l] = std::max(s->durable_.lane_seq[l], last);
    // Acks delete from the oldest entry up: none is left below the oldest there is.
    s->durable_.ack_floor[l] = n != 0 ? first : s->durable_.lane_seq[l] + 1;
  }

  core::node_id node = s->opts_.node;
  if (node == 0) node = stored_node->value_or(0);
  if (node == 0) node = core::new_node_id(*s->opts_.rng);
  s->node_ = node;
  s->clock_ = std::make_unique<core::hlc_clock>(node, s->opts_.clock);
  if (s->durable_.hlc.wall_ms != 0) s->clock_->restore(s->durable_.hlc);
  s->ulid_ = std::make_unique<core::ulid_generator>(*s->opts_.rng);
  s->working_ = s->durable_;
  for (uint8_t l = 0; l < core::lane_count; ++l) {
    s->head_pub_[l].store(s->durable_.lane_seq[l]);
    s->pending_pub_[l].store(s->durable_.pending[l]);
    s->outbox_head_pub_[l].store(s->durable_.outbox_head[l]);
  }
  s->dot_floor_pub_.store(s->durable_.dot_floor);
  s->counter_node_pub_.store(s->durable_.counter_node != 0 ? s->durable_.counter_node : node);

  if (stored_node->value_or(0) != node || stored_schema->value_or(0) != schema_version) {
    uint32_t space = s->space_;
    auto st = s->commit(
        [space, node, enc = s->opts_.cipher != nullptr](txn& t, std::vector<change>&) {
          t.put(cf_meta, keys::meta(space, "node_id"), keys::encode_u64(node));
          t.put(cf_meta, keys::meta(space, "schema_version"), keys::encode_u64(schema_version));
          if (enc) t.put(cf_meta, keys::meta(space, "encrypted"), keys::encode_u64(1));
          return status();
        },
        nullptr);
    if (st) return st;
  }
  return s;
}

node_store_impl::~node_store_impl() {
  // Requests are processed in order: once this no-op is done, none of ours is pending.
  if (space_claimed_) {
    (void)commit([](txn&, std::vector<change>&) { return status(); }, nullptr);
    db_.release_space(space_);
  }
}

// -- committer plumbing ---------------------------------------------------------------

void node_store_impl::submit(prep_fn prep, done_fn done, bool needs_sync, int priority, size_t weight) {
  auto r = std::make_unique<store_request>(this, std::move(prep), std::move(done));
  r->needs_sync = needs_sync;
  r->priority = priority;
  r->weight = weight;
  db_.submit(std::move(r));
}

namespace {
/// The committer's priority of a request: the lane of its most urgent record (lane 3,
/// the lowest, for a collection the registry does not know; validation rejects it later).
template <class Items, class KeyOf>
int most_urgent_lane(const core::collection_registry& reg, const Items& items, KeyOf key_of) {
  int lane = static_cast<int>(core::lane_count) - 1;
  for (const auto& it : items)
    if (const auto* c = reg.find(key_of(it).collection)) lane = std::min(lane, static_cast<int>(c->lane));
  return lane;
}
// The lane a write of `ops` commits in: that of its most urgent record.
int ops_lane(const core::collection_registry& reg, const std::vector<write_op>& ops) {
  return most_urgent_lane(reg, ops, [](const write_op& op) -> const core::record_key& {
    return std::visit([](const auto& o) -> const core::record_key& { return o.key; }, op);
  });
}
} // namespace

status node_store_impl::commit(prep_fn prep, std::vector<change>* changes, int priority, size_t weight) {
  auto pr = std::make_shared<std::promise<status>>();
  auto f = pr->get_future();
  submit(
      std::move(prep),
      [pr, changes](const status& s, std::vector<change>&& ch) {
        if (changes) *changes = std::move(ch);
        pr->set_value(s);
      },
      true, priority, weight);
  return f.get();
}

void node_store_impl::notify(const std::vector<change>& changes) {
  for (const auto& c : changes) {
    auto it = collection_slot_.find(c.key.collection);
    if (it != collection_slot_.end()) collection_changes_[it->second].fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<commit_listener> l;
  {
    std::lock_guard<std::mutex> lk(listener_mu_);
    l = listener_;
  }
  if (l && *l) (*l)(changes);
}

status node_store_impl::request_accept(txn& t) {
  for (uint8_t l = 0; l < core::lane_count; ++l)
    if (scratch_.lane_seq[l] != working_.lane_seq[l])
      t.put(cf_meta, keys::meta(space_, "lane_seq/" + std::to_string(l)), keys::encode_u64(scratch_.lane_seq[l]));
  if (scratch_.conflict_seq != working_.conflict_seq)
    t.put(cf_meta, keys::meta(space_, "conflict_seq"), keys::encode_u64(scratch_.conflict_seq));
  if (scratch_.audit_seq != working_.audit_seq)
    t.put(cf_meta, keys::meta(space_, "audit_seq"), keys::encode_u64(scratch_.audit_seq));
  if (working_.hlc < scratch_.hlc) t.put(cf_meta, keys::meta(space_, "hlc"), encode_hlc(scratch_.hlc));
  if (scratch_.dot_floor != working_.dot_floor)
    t.put(cf_meta, keys::meta(space_, "dot_floor"), keys::encode_u64(scratch_.dot_floor));
  if (scratch_.counter_node != working_.counter_node)
    t.put(cf_meta, keys::meta(space_, "counter_node"), keys::encode_u64(scratch_.counter_node));
  working_ = scratch_;
  return status();
}

void node_store_impl::group_committed() {
  durable_ = sealed_;
  for (uint8_t l = 0; l < core::lane_count; ++l) {
    head_pub_[l].store(durable_.lane_seq[l], std::memory_order_release);
    pending_pub_[l].store(durable_.pending[l], std::memory_order_release);
    outbox_head_pub_[l].store(durable_.outbox_head[l], std::memory_order_release);
  }
  dot_floor_pub_.store(durable_.dot_floor, std::memory_order_release);
  counter_node_pub_.store(durable_.counter_node != 0 ? durable_.counter_node : node_, std::memory_order_release);
}

// -- clock ------------------------------------------------------------------------------

core::hlc_timestamp node_store_impl::clock_now() {
  std::lock_guard<std::mutex> lk(clock_mu_);
  return clock_->now();
}

core::hlc_timestamp node_store_impl::clock_update(const core::hlc_timestamp& remote) {
  std::lock_guard<std::mutex> lk(clock_mu_);
  return clock_->update(remote);
}

// -- writes -------------------------------------------------------------------------------

status node_store_impl::check_counter(const counter_op& c) const {
  if (auto s = core::validate_key(c.key, *reg_, opts_.limits)) return s;
  const auto* info = reg_->find(c.key.collection);
  if (info->policy != core::policy::counter)
    return error(errc::invalid_argument, "collection '" + info->name + "' is not a counter (policy " +
                                             core::to_string(info->policy) + ")");
  return status();
}

status node_store_impl::check_ops(std::vector<write_op>& ops) const {
  if (ops.empty()) return error(errc::invalid_argument, "write: no operations");
  std::vector<write_op> extra;
  for (auto& op : ops) {
    if (auto* p = std::get_if<put_op>(&op)) {
      if (auto s = core::validate_key(p->key, *reg_, opts_.limits)) return s;
      const auto* info = reg_->find(p->key.collection);
      if (info->policy == core::policy::counter)
        return error(errc::invalid_argument,
                     "collection '" + info->name + "' is a counter: write it with counter_op, not put_op");
      if (p->tombstone) {
        p->body.clear();
        continue;
      }
      if (auto s = core::validate_body(*info, p->body)) return s;
      // Stock effects of returns and stock movements travel in the same commit.
      std::map<std::string, int64_t> delta;
      if (info->body_type == return_type && info->restocks) {
        v1::Return r;
        if (!r.ParseFromString(p->body)) return error(errc::invalid_argument, "return body does not parse");
        sum_items(r.items(), delta);
      } else if (info->body_type == movement_type) {
        v1::StockMovement m;
        if (!m.ParseFromString(p->body)) return error(errc::invalid_argument, "stock_movement body does not parse");
        if (!m.product_id().empty() && m.delta() != 0) delta[m.product_id()] += m.delta();
      }
      for (auto& [product, qty] : delta)
        if (qty != 0)
          extra.push_back(counter_op{core::record_key{p->key.tenant, p->key.scope, stock_collection, product}, qty});
    } else if (auto s = check_counter(std::get<counter_op>(op))) {
      return s;
    }
  }
  for (auto& op : extra) {
    auto& c = std::get<counter_op>(op);
    if (auto s = check_counter(c)) return error(s.code, "stock of " + c.key.id + ": " + s.message);
    ops.push_back(std::move(op));
  }
  return status();
}

result<stored_record> node_store_impl::load(txn& t, const core::record_key& key) {
  return load(t, key, keys::record(space_, key));
}

result<stored_record> node_store_impl::load(txn& t, const core::record_key& key, const std::string& rkey,
                                           const std::optional<std::string>* before) {
  if (before && !t.staged_has(cf_records, rkey)) {
    if (!before->has_value()) {
      stored_record out;
      out.rec.key = key;
      return out;
    }
    return decode_record(**before, key, rkey);
  }
  auto v = t.get(cf_records, rkey);
  if (!v) return std::move(v).err();
  if (!v->has_value()) {
    stored_record out;
    out.rec.key = key;
    return out;
  }
  return decode_record(**v, key, rkey);
}

result<std::string> node_store_impl::seal(char column, std::string_view rkey, std::string plain) const {
  if (!opts_.cipher) return plain;
  std::string aad(1, column);
  aad.append(rkey.data(), rkey.size());
  return opts_.cipher->seal(aad, plain);
}

result<std::string> open_sealed(const value_cipher* cipher, char column, std::string_view rkey,
                                std::string_view stored) {
  if (!cipher) return std::string(stored);
  std::string aad(1, column);
  aad.append(rkey.data(), rkey.size());
  return cipher->open(aad, stored);
}

result<std::string> node_store_impl::open_value(char column, std::string_view rkey, std::string_view stored) const {
  return open_sealed(opts_.cipher.get(), column, rkey, stored);
}

result<stored_record> node_store_impl::decode_record(std::string_view stored, const core::record_key& key,
                                                     std::string_view rkey) const {
  if (!opts_.cipher) return decode_stored(stored, key);
  auto plain = open_value('r', rkey, stored);
  if (!plain) return error(errc::data_loss, "record " + key.to_string() + ": " + plain.err().message);
  return decode_stored(*plain, key);
}

status node_store_impl::prepare_write(txn& t, std::vector<write_op>& ops, core::hlc_timestamp& hlc,
                                      std::vector<change>& ch) {
  std::vector<std::string> rkeys;
  rkeys.reserve(ops.size());
  for (auto& op : ops)
    rkeys.push_back(keys::record(space_, std::holds_alternative<put_op>(op) ? std::get<put_op>(op).key
                                                                             : std::get<counter_op>(op).key));
  auto pre = t.read_many(cf_records, rkeys);
  if (!pre) return std::move(pre).err();
  for (size_t i = 0; i < ops.size(); ++i) {
    auto& op = ops[i];
    const core::record_key& key =
        std::holds_alternative<put_op>(op) ? std::get<put_op>(op).key : std::get<counter_op>(op).key;
    const auto* info = reg_->find(key.collection);
    auto cur = load(t, key, rkeys[i], &(*pre)[i]);
    if (!cur) return std::move(cur).err();
    core::record after = cur->rec;

    core::write_spec spec = own_write();
    if (auto* p = std::get_if<put_op>(&op)) {
      if (info->policy == core::policy::immutable && !cur->rec.empty())
        return error(errc::already_exists, key.to_string() + " exists and its collection is immutable");
      spec.context = p->context;
      spec.tombstone = p->tombstone;
      spec.body = p->body;
    } else {
      auto body = core::counter_add_body(cur->rec, writer(), std::get<counter_op>(op).delta);
      if (!body) return std::move(body).err();
      spec.body = std::move(body).value();
    }
    spec.hlc = hlc = clock_now();
    const core::version& made = core::apply_local_write(after, spec);
    core::dot d = made.id;
    if (info->policy == core::policy::field_merge && !spec.tombstone) {
      auto before_view = core::resolve(cur->rec, info->policy, info->tie);
      auto stamps = core::stamp_fields(before_view, spec.body, d, spec.hlc, spec.hq);
      if (!stamps) return error(errc::invalid_argument, key.to_string() + ": " + stamps.err().message);
      for (auto& v : after.versions)
        if (v.id == d) v.fields = std::move(stamps).value();
    }
    if (info->policy != core::policy::counter && info->policy != core::policy::immutable)
      if (auto e = note_conflict(t, *info, cur->rec, after)) return e;
    if (auto s = store_record(t, *info, *cur, after, opts_.outbox, d, ch)) return s;
  }
  return status();
}

status node_store_impl::prepare_apply(txn& t, std::vector<core::record>& states, bool from_downstream,
                                      apply_result& out, std::vector<change>& ch) {
  std::vector<std::string> rkeys;
  rkeys.reserve(states.size());
  for (auto& st : states) rkeys.push_back(keys::record(space_, st.key));
  auto pre = t.read_many(cf_records, rkeys);
  if (!pre) return std::move(pre).err();
  for (size_t i = 0; i < states.size(); ++i) {
    auto& st = states[i];
    const auto* info = reg_->find(st.key.collection);
    if (!info) continue;  // rejected before submit
    auto cur = load(t, st.key, rkeys[i], &(*pre)[i]);
    if (!cur) return std::move(cur).err();
    core::record after = cur->rec;
    auto outcome = core::merge_into(after, st);
    if (!outcome.changed) {
      ++out.unchanged;
      continue;
    }
    // A peer below may be faulty or hostile: it must not delete or rewrite another
    // register's sale, or drop another node's stock counts.
    if (from_downstream)
      if (auto why = core::refuse_from_downstream(cur->rec, st, after, outcome, info->policy)) {
        out.rejected.push_back(rejection{st.key, std::move(why)});
        continue;
      }
    if (auto e = note_conflict(t, *info, cur->rec, after)) return e;
    // A fold is this node's own write, so it goes upstream whichever way the states came.
    const bool folded = fold_counter(*info, after);
    if (auto s = store_record(t, *info, *cur, after, (from_downstream || folded) && opts_.outbox,
                              std::nullopt, ch))
      return s;
    ++out.applied;
  }
  return status();
}

core::write_spec node_store_impl::own_write() const {
  core::write_spec spec;
  spec.writer = writer();
  spec.hq = opts_.role == node_role::hq;
  spec.counter_floor = scratch_.dot_floor;
  return spec;
}

bool node_store_impl::fold_counter(const core::collection_info& info, core::record& r) {
  if (info.policy != core::policy::counter || opts_.role == node_role::terminal) return false;
  core::write_spec spec = own_write();
  if (!core::counter_fold_due(r, spec.writer, spec.hq)) return false;
  spec.body = core::encode_counter(core::counter_of(r));
  spec.hlc = clock_now();
  core::apply_local_write(r, spec);
  return true;
}

status node_store_impl::store_record(txn& t, const core::collection_info& info, const stored_record& prior,
                                     const core::record& after, bool to_outbox, std::optional<core::dot> d,
                                     std::vector<change>& ch) {
  const core::record& before = prior.rec;
  const uint64_t before_seq = prior.feed_seq;
  const auto& key = after.key;
  const uint8_t lane = info.lane;
  const uint64_t seq = ++scratch_.lane_seq[lane];
  const auto now_ms = static_cast<int64_t>(opts_.clock());
  if (before_seq != 0) t.del(cf_feed, keys::feed(space_, key.tenant, key.scope, lane, before_seq));
  t.put(cf_feed, keys::feed(space_, key.tenant, key.scope, lane, seq), keys::feed_value(key));

  google::protobuf::Arena arena;
  auto& sr = *google::protobuf::Arena::CreateMessage<v1::StoredRecord>(&arena);
  for (const auto& v : after.versions)
    core::to_proto(v, sr.add_versions(), core::vectors::packed);
  sr.set_feed_seq(seq);
  sr.set_written_ms(now_ms);
  sr.set_outbox_seq(to_outbox ? seq : 0);
  {
    auto rk = keys::record(space_, key);
    auto value = seal('r', rk, sr.SerializeAsString());
    if (!value) return std::move(value).err();
    t.put(cf_records, std::move(rk), std::move(value).value());
  }

  if (to_outbox) {
    // One outbox entry per key: the new state holds everything the queued one did, so
    // it supersedes it (a stock counter written 1,000 times offline goes up once). An
    // entry already pushed and in flight is acked by seq as usual.
    // Whether before's entry is still there: the record says if it was queued, and an
    // ack deletes every entry up to its seq, so a queued entry at or above the ack
    // floor is (a register's counter is usually acked before its next sale). Only a
    // value written before records kept outbox_seq makes this ask the outbox.
    if (before_seq != 0 && before_seq >= scratch_.ack_floor[lane]) {
      auto old_key = keys::outbox(space_, lane, before_seq);
      bool queued = prior.outbox_seq && *prior.outbox_seq == before_seq;
      if (!prior.outbox_seq) {
        auto old = t.get(cf_outbox, old_key);
        if (!old) return std::move(old).err();
        queued = old->has_value();
      }
      if (queued) {
        t.del(cf_outbox, std::move(old_key));
        scratch_.pending[lane] -= std::min<uint64_t>(1, scratch_.pending[lane]);
      }
    }
    v1::OutboxEntry oe;
    core::to_proto(key, oe.mutable_key());
    *oe.mutable_versions() = sr.versions();
    oe.set_queued_ms(now_ms);
    auto ok = keys::outbox(space_, lane, seq);
    auto value = seal('o', ok, oe.SerializeAsString());
    if (!value) return std::move(value).err();
    t.put(cf_outbox, std::move(ok), std::move(value).value());
    ++scratch_.pending[lane];
    scratch_.outbox_head[lane] = seq;
  }
  for (const auto& v : after.versions) scratch_.hlc = std::max(scratch_.hlc, v.hlc);
  if (auto s = update_indexes(t, info, before, after)) return s;
  ch.push_back(change{key, lane, seq, d});
  return status();
}

status node_store_impl::note_conflict(txn& t, const core::collection_info& info, const core::record& before,
                                      const core::record& after) {
  if (info.policy == core::policy::counter) return {};
  auto c = core::detect_conflict(after, info.policy, info.tie);
  if (!c) return {};
  // Only a new sibling set is a new conflict.
  if (before.versions.size() == after.versions.size() &&
      std::equal(before.versions.begin(), before.versions.end(), after.versions.begin(),
                 [](const core::version& a, const core::version& b) { return a.id == b.id; }))
    return {};
  const uint64_t id = ++scratch_.conflict_seq;
  v1::ConflictEntry e;
  core::to_proto(after.key, e.mutable_key());
  for (const auto& v : after.versions)
    core::to_proto(v, e.add_versions(), core::vectors::packed);
  e.set_policy(core::to_string(info.policy));
  std::string rule = c->rule;
  if (!c->fields.empty()) {
    rule += " (fields";
    for (auto f : c->fields) rule += " " + std::to_string(f);
    rule += ")";
  }
  e.set_rule(rule);
  core::to_proto(clock_now(), e.mutable_detected());
  auto ck = keys::numbered(space_, id);
  auto value = seal('c', ck, e.SerializeAsString());
  if (!value) return std::move(value).err();
  t.put(cf_conflicts, std::move(ck), std::move(value).value());
  return {};
}

status node_store_impl::update_indexes(txn& t, const core::collection_info& info, const core::record& before,
                                       const core::record& after) {
  if (info.body_type == product_type) {
    struct terms {
      std::set<std::string> codes;
      std::string name;
    };
    auto extract = [&](const core::record& r) {
      terms out;
      if (r.empty()) return out;
      v1::Product p;
      if (r.versions.size() == 1) {
        // One version: its body parses to the message its resolved view would (a
        // field_merge view of one version holds the fields its body has), without
        // merging fields first. Most applied products have one version.
        const auto& v = r.versions.front();
        if (v.tombstone || !p.ParseFromString(v.body)) return out;
      } else {
        auto view = core::resolve(r, info.policy, info.tie);
        if (!view.exists || !p.ParseFromString(view.body)) return out;
      }
      auto add = [&](const std::string& c) {
        if (!c.empty() && c.find('\0') == std::string::npos) out.codes.insert(c);
      };
      add(p.barcode());
      for (const auto& c : p.alt_barcodes()) add(c);
      out.name = lower_ascii(p.name());
      return out;
    };
    const auto& key = after.key;
    terms old_t = extract(before), new_t = extract(after);
    for (const auto& c : old_t.codes) {
      if (new_t.codes.count(c)) continue;
      auto k = keys::barcode(space_, key.tenant, c);
      auto cur = t.get(cf_index, k);
      if (!cur) return std::move(cur).err();
      if (cur->has_value() && **cur == key.id) t.del(cf_index, std::move(k));
    }
    for (const auto& c : new_t.codes) {
      auto k = keys::barcode(space_, key.tenant, c);
      auto cur = t.get(cf_index, k);
      if (!cur) return std::move(cur).err();
      if (!cur->has_value() || **cur != key.id) t.put(cf_index, std::move(k), key.id);
    }
    if (old_t.name != new_t.name) {
      if (!old_t.name.empty()) t.del(cf_index, keys::name(space_, key.tenant, old_t.name, key.id));
      if (!new_t.name.empty()) t.put(cf_index, keys::name(space_, key.tenant, new_t.name, key.id), std::string());
    }
  } else if (info.body_type == sale_type) {
    auto time_of = [&](const core::record& r) -> std::optional<int64_t> {
      if (r.empty()) return std::nullopt;
      auto view = core::resolve(r, info.policy, info.tie);
      if (!view.exists) return std::nullopt;
      if (auto t = scan_sale_time(view.body)) return t;
      v1::Sale s;
      if (!s.ParseFromString(view.body)) return std::nullopt;
      return s.time_ms();
    };
    const auto& key = after.key;
    auto old_time = time_of(before), new_time = time_of(after);
    if (old_time != new_time) {
      if (old_time) t.del(cf_index, keys::sale_time(space_, key.tenant, key.scope, *old_time, key.id));
      if (new_time) t.put(cf_index, keys::sale_time(space_, key.tenant, key.scope, *new_time, key.id), std::string());
    }
  }
  return status();
}

// -- reads -----------------------------------------------------------------------------------

result<std::optional<core::record>> node_store_impl::get(const core::record_key& key) const {
  std::string v;
  const auto rk = keys::record(space_, key);
  auto s = db_.db()->Get(rocksdb::ReadOptions(), db_.cf(cf_records), rk, &v);
  if (s.IsNotFound()) return std::optional<core::record>();
  if (!s.ok()) return map_status(s, "read");
  auto d = decode_record(v, key, rk);
  if (!d) return std::move(d).err();
  return std::optional<core::record>(std::move(d->rec));
}

// -- node_store ---------------------------------------------------------------------------------

node_store::node_store(std::unique_ptr<node_store_impl> impl) : impl_(std::move(impl)) {}
node_store::~node_store() = default;

result<std::unique_ptr<node_store>> node_store::open(std::shared_ptr<database> db, store_options opts) {
  auto s = node_store_impl::open(std::move(db), std::move(opts));
  if (!s) return std::move(s).err();
  return std::unique_ptr<node_store>(new node_store(std::move(s).value()));
}

core::node_id node_store::node() const { return impl_->node_; }
node_role node_store::role() const { return impl_->opts_.role; }
uint32_t node_store::space() const { return impl_->space_; }
const core::collection_registry& node_store::registry() const { return *impl_->reg_; }

result<commit_result> node_store::write(std::vector<write_op> ops) {
  if (auto s = impl_->check_ops(ops)) return s;
  commit_result out;
  auto* im = impl_.get();
  // In its lane, like write_async: a sale recorded while a download is applied goes ahead
  // of the queued applies (as a barrier it would wait behind all of them).
  const int lane = ops_lane(*im->reg_, ops);
  const size_t weight = ops.size();
  auto s = im->commit(
      [im, &ops, &out](txn& t, std::vector<change>& ch) { return im->prepare_write(t, ops, out.hlc, ch); },
      &out.changes, lane, weight);
  if (s) return s;
  return out;
}

void node_store::write_async(std::vector<write_op> ops, std::function<void(result<commit_result>)> done) {
  if (auto s = impl_->check_ops(ops)) {
    if (done) done(std::move(s));
    return;
  }
  struct state {
    std::vector<write_op> ops;
    core::hlc_timestamp hlc;
  };
  auto st = std::make_shared<state>();
  st->ops = std::move(ops);
  auto* im = impl_.get();
  const int lane = ops_lane(*im->reg_, st->ops);
  const size_t weight = st->ops.size();
  im->submit([im, st](txn& t, std::vector<change>& ch) { return im->prepare_write(t, st->ops, st->hlc, ch); },
             [st, done = std::move(done)](const status& s, std::vector<change>&& ch) {
               if (!done) return;
               if (s) {
                 done(error(s.code, s.message));
                 return;
               }
               done(commit_result{std::move(ch), st->hlc});
             },
             true, lane, weight);
}

namespace {

// The ops of one sale: the sale itself and one stock decrement per distinct product,
// so the sale and its stock effect always commit together.
result<std::vector<write_op>> sale_ops(const core::collection_registry& reg, const core::record_key& key,
                                      std::string sale_body) {
  const auto* info = reg.find(key.collection);
  if (!info || info->body_type != sale_type)
    return error(errc::invalid_argument, "record_sale: collection '" + key.collection + "' does not hold sales");
  v1::Sale sale;
  if (!sale.ParseFromString(sale_body)) return error(errc::invalid_argument, "record_sale: body is not a Sale");
  std::map<std::string, int64_t> per_product;
  sum_items(sale.items(), per_product);
  std::vector<write_op> ops;
  ops.reserve(1 + per_product.size());
  ops.push_back(put_op{key, std::move(sale_body), false, std::nullopt});
  for (auto& [product, qty] : per_product)
    if (qty != 0) ops.push_back(counter_op{core::record_key{key.tenant, key.scope, stock_collection, product}, -qty});
  return ops;
}

} // namespace

result<commit_result> node_store::record_sale(const core::record_key& key, std::string sale_body) {
  auto ops = sale_ops(*impl_->reg_, key, std::move(sale_body));
  if (!ops) return std::move(ops).err();
  return write(std::move(*ops));
}

void node_store::record_sale_async(const core::record_key& key, std::string sale_body,
                                   std::function<void(result<commit_result>)> done) {
  auto ops = sale_ops(*impl_->reg_, key, std::move(sale_body));
  if (!ops) {
    done(std::move(ops).err());
    return;
  }
  write_async(std::move(*ops), std::move(done));
}

std::string node_store::new_id() {
  std::lock_guard<std::mutex> lk(impl_->ulid_mu_);
  return impl_->ulid_->next(impl_->opts_.clock());
}

result<apply_result> node_store::apply_remote(std::vector<core::record> states, apply_source from) {
  return wait_for<result<apply_result>>([&](auto done) {
    apply_remote_async(std::move(states), from, std::nullopt, std::move(done));
  });
}

void node_store::apply_remote_async(std::vector<core::record> states, apply_source from,
                                    std::optional<cursor_update> cursor,
                                    std::function<void(result<apply_result>)> done) {
  struct state {
    std::vector<core::record> ok;  // the states that passed validation
    apply_result out;
    std::string cursor_key;        // empty: no cursor
    uint64_t cursor_seq = 0;
    status bad;                    // the request as a whole is invalid
    size_t invalid = 0;            // out.rejected before the commit (by validation)
  };
  auto st = std::make_shared<state>();
  if (cursor) {
    if (cursor->lane >= core::lane_count)
      st->bad = error(errc::invalid_argument, "apply_remote: cursor lane " + std::to_string(cursor->lane) +
                                                  " out of range");
    else if (cursor->tenant.find('\0') != std::string::npos || cursor->scope.find('\0') != std::string::npos)
      st->bad = error(errc::invalid_argument, "apply_remote: cursor tenant or scope contains NUL");
    else
      st->cursor_key = keys::cursor(impl_->space_, cursor->peer, cursor->tenant, cursor->scope, cursor->lane);
    st->cursor_seq = cursor->seq;
  }
  if (!st->bad) {
    st->ok.reserve(states.size());
    core::hlc_timestamp newest;
    for (auto& rec : states) {
      if (auto s = core::validate_record(rec, *impl_->reg_, impl_->opts_.limits)) {
        st->out.rejected.push_back(rejection{rec.key, std::move(s)});
        continue;
      }
      for (const auto& v : rec.versions) newest = std::max(newest, v.hlc);
      st->ok.push_back(std::move(rec));
    }
    st->invalid = st->out.rejected.size();
    // Later local writes must order after what we received.
    if (newest.wall_ms != 0) impl_->clock_update(newest);
  }
  // Even an invalid or empty request goes through the committer, so that requests
  // complete in the order they were made (an empty one costs no RocksDB write).
  auto* im = impl_.get();
  const bool relay = from.from_downstream;
  int lane = most_urgent_lane(*im->reg_, st->ok, [](const core::record& r) -> const core::record_key& { return r.key; });
  if (cursor && cursor->lane < core::lane_count) lane = std::min(lane, static_cast<int>(cursor->lane));
  const size_t weight = std::max<size_t>(1, st->ok.size());
  im->submit(
      [im, st, relay](txn& t, std::vector<change>& ch) -> status {
        if (st->bad) return st->bad;
        st->out.applied = st->out.unchanged = 0;
        st->out.rejected.resize(st->invalid); // a prepare run again refuses afresh
        if (!st->ok.empty())
          if (auto s = im->prepare_apply(t, st->ok, relay, st->out, ch)) return s;
        if (!st->cursor_key.empty()) {
          // Max against what this group or the DB already holds: never backwards.
          auto cur = t.get(cf_cursors, st->cursor_key);
          if (!cur) return std::move(cur).err();
          uint64_t stored = 0;
          if (cur->has_value()) {
            if ((*cur)->size() != 8)
              return error(errc::data_loss, "cursor value has " + std::to_string((*cur)->size()) +
                                                " bytes, expected 8");
            stored = keys::get_u64(**cur);
          }
          if (st->cursor_seq > stored) t.put(cf_cursors, st->cursor_key, keys::encode_u64(st->cursor_seq));
        }
        return status();
      },
      [st, done = std::move(done)](const status& s, std::vector<change>&& ch) {
        if (!done) return;
        if (s) {
          done(error(s.code, s.message));
          return;
        }
        st->out.changes = std::move(ch);
        done(std::move(st->out));
      },
      true, lane, weight);
}

result<std::optional<core::record>> node_store::get(const core::record_key& key) const {
  if (auto s = core::validate_key(key, *impl_->reg_, impl_->opts_.limits)) return s;
  return impl_->get(key);
}

result<core::resolved_view> node_store::read(const core::record_key& key) const {
  if (auto s = core::validate_key(key, *impl_->reg_, impl_->opts_.limits)) return s;
  const auto* info = impl_->reg_->find(key.collection);
  auto r = impl_->get(key);
  if (!r) return std::move(r).err();
  if (!r->has_value()) return core::resolved_view();
  return core::resolve(**r, info->policy, info->tie);
}

result<std::vector<core::record>> node_store::records_of(const std::string& tenant, const std::string& scope,
                                                         const std::string& collection, size_t limit) const {
  std::vector<core::record> out;
  if (!impl_->reg_->find(collection)) return error(errc::invalid_argument, "unknown collection '" + collection + "'");
  auto prefix = keys::record(impl_->space_, core::record_key{tenant, scope, collection, ""});
  bounded_iter bi(impl_->db_.db(), impl_->db_.cf(cf_records), prefix);
  for (bi.it->SeekToFirst(); bi.it->Valid() && out.size() < limit; bi.it->Next()) {
    auto k = bi.it->key().ToStringView();
    core::record_key key{tenant, scope, collection, std::string(k.substr(prefix.size()))};
    auto d = impl_->decode_record(bi.it->value().ToString(), key, std::string(k));
    if (!d) return std::move(d).err();
    out.push_back(std::move(d->rec));
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "records_of");
  return out;
}

result<int64_t> node_store::stock_level(const std::string& tenant, const std::string& branch,
                                        const std::string& product_id) const {
  core::record_key key{tenant, branch, stock_collection, product_id};
  if (auto s = core::validate_key(key, *impl_->reg_, impl_->opts_.limits)) return s;
  auto r = impl_->get(key);
  if (!r) return std::move(r).err();
  if (!r->has_value()) return int64_t{0};
  return core::counter_of(**r).value();
}

result<std::optional<std::string>> node_store::product_by_barcode(const std::string& tenant,
                                                                  const std::string& barcode) const {
  if (barcode.empty() || barcode.find('\0') != std::string::npos || tenant.find('\0') != std::string::npos)
    return std::optional<std::string>();
  std::string v;
  auto s = impl_->db_.db()->Get(rocksdb::ReadOptions(), impl_->db_.cf(cf_index),
                                keys::barcode(impl_->space_, tenant, barcode), &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return map_status(s, "read");
  return std::optional<std::string>(std::move(v));
}

result<std::vector<std::string>> node_store::search_products(const std::string& tenant, const std::string& prefix,
                                                             size_t limit) const {
  std::vector<std::string> out;
  if (limit == 0 || tenant.find('\0') != std::string::npos) return out;
  bounded_iter bi(impl_->db_.db(), impl_->db_.cf(cf_index),
                  keys::name_prefix(impl_->space_, tenant, lower_ascii(prefix)));
  for (bi.it->SeekToFirst(); bi.it->Valid() && out.size() < limit; bi.it->Next()) {
    auto k = bi.it->key().ToStringView();
    auto pos = k.rfind('\0');
    if (pos == std::string_view::npos || pos < bi.lower.size()) continue;
    out.emplace_back(k.substr(pos + 1));
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "search");
  return out;
}

result<std::vector<core::record_key>> node_store::sales_between(const std::string& tenant, const std::string& branch,
                                                                int64_t from_ms, int64_t to_ms,
                                                                size_t limit) const {
  std::vector<core::record_key> out;
  if (limit == 0 || from_ms >= to_ms || tenant.find('\0') != std::string::npos ||
      branch.find('\0') != std::string::npos)
    return out;
  std::string prefix = keys::sale_time_prefix(impl_->space_, tenant, branch);
  std::string lower = prefix, upper = prefix;
  keys::put_u64(lower, keys::sortable_i64(from_ms));
  keys::put_u64(upper, keys::sortable_i64(to_ms));
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db_.db()->NewIterator(ro, impl_->db_.cf(cf_index)));
  const size_t id_at = prefix.size() + 9;
  for (it->SeekToFirst(); it->Valid() && out.size() < limit; it->Next()) {
    auto k = it->key().ToStringView();
    if (k.size() <= id_at) continue;
    out.push_back(core::record_key{tenant, branch, "sale", std::string(k.substr(id_at))});
  }
  if (!it->status().ok()) return map_status(it->status(), "sales_between");
  return out;
}

result<std::vector<feed_entry>> node_store::read_feed(const std::string& tenant, const std::string& scope,
                                                      uint8_t lane, uint64_t after, size_t limit,
                                                      const std::set<std::string>* only) const {
  std::vector<feed_entry> out;
  if (limit == 0 || after == UINT64_MAX || lane >= core::lane_count || tenant.find('\0') != std::string::npos ||
      scope.find('\0') != std::string::npos)
    return out;
  auto* db = impl_->db_.db();
  snapshot_guard snap(db);
  bounded_iter bi(db, impl_->db_.cf(cf_feed), keys::feed_prefix(impl_->space_, tenant, scope, lane), snap.snap);
  std::vector<std::string> rkeys;
  std::vector<core::record_key> rks;
  std::vector<uint64_t> seqs;
  for (bi.it->Seek(keys::feed(impl_->space_, tenant, scope, lane, after + 1));
       bi.it->Valid() && seqs.size() < limit; bi.it->Next()) {
    auto k = bi.it->key().ToStringView();
    auto v = bi.it->value().ToStringView();
    auto sep = v.find('\0');
    if (k.size() != bi.lower.size() + 8 || sep == std::string_view::npos)
      return error(errc::data_loss, "malformed feed entry");
    core::record_key rk{tenant, scope, std::string(v.substr(0, sep)), std::string(v.substr(sep + 1))};
    // A passed-over entry gets no record key (a real one always starts with the space).
    const bool pass = only && only->count(rk.collection) == 0;
    rkeys.push_back(pass ? std::string() : keys::record(impl_->space_, rk));
    rks.push_back(std::move(rk));
    seqs.push_back(keys::get_u64(k, bi.lower.size()));
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "read_feed");
  if (seqs.empty()) return out;
  // States other sessions read lately come from the cache; the rest with one MultiGet.
  auto& cache = impl_->feed_cache_;
  std::vector<std::shared_ptr<const core::record>> recs(seqs.size());
  std::vector<size_t> miss;
  for (size_t i = 0; i < seqs.size(); ++i)
    if (!rkeys[i].empty() && !(recs[i] = cache.find(rkeys[i], seqs[i]))) miss.push_back(i);
  if (!miss.empty()) {
    std::vector<rocksdb::Slice> slices;
    slices.reserve(miss.size());
    for (size_t i : miss)
      slices.emplace_back(rkeys[i]);
    std::vector<rocksdb::PinnableSlice> values(miss.size());
    std::vector<rocksdb::Status> statuses(miss.size());
    rocksdb::ReadOptions ro;
    ro.snapshot = snap.snap;
    db->MultiGet(ro, impl_->db_.cf(cf_records), slices.size(), slices.data(), values.data(), statuses.data());
    for (size_t j = 0; j < miss.size(); ++j) {
      const size_t i = miss[j];
      if (statuses[j].IsNotFound())
        return error(errc::data_loss,
                     "feed entry " + std::to_string(seqs[i]) + " names missing record " + rks[i].to_string());
      if (!statuses[j].ok()) return map_status(statuses[j], "read_feed");
      auto d = impl_->decode_record(values[j].ToStringView(), rks[i], slices[j].ToStringView());
      if (!d) return std::move(d).err();
      const bool cacheable = d->feed_seq == seqs[i];
      recs[i] = std::make_shared<const core::record>(std::move(d->rec));
      if (cacheable) cache.put(rkeys[i], seqs[i], recs[i]);
    }
  }
  out.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (rkeys[i].empty()) {
      feed_entry e;
      e.seq = seqs[i];
      e.rec.key = std::move(rks[i]);
      e.passed_over = true;
      out.push_back(std::move(e));
    } else {
      out.push_back(feed_entry{seqs[i], *recs[i]});
    }
  }
  return out;
}

uint64_t node_store::collection_changes(std::string_view collection) const {
  auto it = impl_->collection_slot_.find(collection);
  if (it == impl_->collection_slot_.end()) return 0;
  return impl_->collection_changes_[it->second].load(std::memory_order_acquire);
}

uint64_t node_store::lane_head(uint8_t lane) const {
  if (lane >= core::lane_count) return 0;
  return impl_->head_pub_[lane].load(std::memory_order_acquire);
}

result<std::vector<outbox_entry>> node_store::outbox_window(uint8_t lane, uint64_t after, size_t limit) const {
  std::vector<outbox_entry> out;
  if (limit == 0 || after == UINT64_MAX || lane >= core::lane_count) return out;
  bounded_iter bi(impl_->db_.db(), impl_->db_.cf(cf_outbox), keys::outbox_prefix(impl_->space_, lane));
  for (bi.it->Seek(keys::outbox(impl_->space_, lane, after + 1)); bi.it->Valid() && out.size() < limit;
       bi.it->Next()) {
    v1::OutboxEntry oe;
    auto v = impl_->open_value('o', bi.it->key().ToStringView(), bi.it->value().ToStringView());
    if (!v) return error(errc::data_loss, "outbox entry: " + v.err().message);
    if (!oe.ParseFromArray(v->data(), static_cast<int>(v->size())))
      return error(errc::data_loss, "outbox entry does not parse");
    outbox_entry e;
    e.seq = keys::get_u64(bi.it->key().ToStringView(), bi.lower.size());
    e.rec.key = core::from_proto(oe.key());
    auto vs = decode_versions(oe.versions(), "outbox entry");
    if (!vs) return std::move(vs).err();
    e.rec.versions = std::move(vs).value();
    e.queued_ms = oe.queued_ms();
    out.push_back(std::move(e));
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "outbox_window");
  return out;
}

status node_store::ack_outbox(uint8_t lane, uint64_t seq) {
  return wait_for<status>([&](auto done) { ack_outbox_async(lane, seq, std::move(done)); });
}

void node_store::ack_outbox_async(uint8_t lane, uint64_t seq, std::function<void(status)> done) {
  auto* im = impl_.get();
  im->submit(
      [im, lane, seq](txn& t, std::vector<change>&) -> status {
        if (lane >= core::lane_count)
          return error(errc::invalid_argument, "lane " + std::to_string(lane) + " out of range");
        if (seq == 0) return status();
        // Entries below the floor were deleted by earlier acks (durable, or prepared in a
        // group that fails only with this one): seeking from there skips their tombstones
        // (a scan over them made each ack cost more than the last until the memtable
        // was flushed).
        auto& floor = im->scratch_.ack_floor[lane];
        std::string begin = keys::outbox(im->space_, lane, floor);
        std::string end = seq == UINT64_MAX ? keys::prefix_end(keys::outbox_prefix(im->space_, lane))
                                            : keys::outbox(im->space_, lane, seq + 1);
        auto ks = t.keys_in(cf_outbox, begin, end);
        if (!ks) return std::move(ks).err();
        for (auto& k : *ks)
          t.del(cf_outbox, std::move(k));
        auto n = static_cast<uint64_t>(ks->size());
        im->scratch_.pending[lane] -= std::min(n, im->scratch_.pending[lane]);
        // Never above the lane's head: an entry queued later with a seq below a
        // floor would be taken for acked.
        floor = std::max(floor, std::min(seq, im->scratch_.lane_seq[lane]) + 1);
        return status();
      },
      [done = std::move(done)](const status& s, std::vector<change>&&) {
        if (done) done(s);
      },
      /*needs_sync=*/false, /*priority=*/lane < core::lane_count ? lane : -1, /*weight=*/1);
}

uint64_t node_store::outbox_head(uint8_t lane) const {
  if (lane >= core::lane_count) return 0;
  return impl_->outbox_head_pub_[lane].load(std::memory_order_acquire);
}

std::array<uint64_t, core::lane_count> node_store::pending() const {
  std::array<uint64_t, core::lane_count> out{};
  for (size_t l = 0; l < core::lane_count; ++l) out[l] = impl_->pending_pub_[l].load(std::memory_order_acquire);
  return out;
}

result<uint64_t> node_store::cursor(core::node_id peer, const std::string& tenant, const std::string& scope,
                                    uint8_t lane) const {
  auto v = get_u64(impl_->db_.db(), impl_->db_.cf(cf_cursors), keys::cursor(impl_->space_, peer, tenant, scope, lane));
  if (!v) return std::move(v).err();
  return v->value_or(0);
}

status node_store::set_cursor(core::node_id peer, const std::string& tenant, const std::string& scope, uint8_t lane,
                              uint64_t seq) {
  if (tenant.find('\0') != std::string::npos || scope.find('\0') != std::string::npos)
    return error(errc::invalid_argument, "set_cursor: tenant or scope contains NUL");
  auto k = keys::cursor(impl_->space_, peer, tenant, scope, lane);
  return impl_->commit(
      [k = std::move(k), seq](txn& t, std::vector<change>&) {
        t.put(cf_cursors, k, keys::encode_u64(seq));
        return status();
      },
      nullptr);
}

status node_store::clear_cursors(core::node_id peer) {
  auto prefix = keys::cursor_prefix(impl_->space_, peer);
  return impl_->commit(
      [prefix](txn& t, std::vector<change>&) -> status {
        auto ks = t.keys_in(cf_cursors, prefix, keys::prefix_end(prefix));
        if (!ks) return std::move(ks).err();
        for (auto& k : *ks) t.del(cf_cursors, std::move(k));
        return status();
      },
      nullptr);
}

namespace {

result<conflict_entry> decode_conflict(const node_store_impl& im, std::string_view key, std::string_view value,
                                       v1::ConflictEntry* raw = nullptr) {
  v1::ConflictEntry local;
  v1::ConflictEntry& e = raw ? *raw : local;
  auto v = im.open_value('c', key, value);
  if (!v) return error(errc::data_loss, "conflict entry: " + v.err().message);
  if (!e.ParseFromArray(v->data(), static_cast<int>(v->size())))
    return error(errc::data_loss, "conflict entry does not parse");
  conflict_entry c;
  c.id = keys::get_u64(key, 4);
  c.key = core::from_proto(e.key());
  auto vs = decode_versions(e.versions(), "conflict entry");
  if (!vs) return std::move(vs).err();
  c.versions = std::move(vs).value();
  c.policy = e.policy();
  c.rule = e.rule();
  c.detected = core::from_proto(e.detected());
  c.resolved = e.resolved();
  c.resolved_by = e.resolved_by();
  c.resolution = e.resolution();
  return c;
}

} // namespace

result<std::vector<conflict_entry>> node_store::conflicts(bool unresolved_only, size_t limit) const {
  std::vector<conflict_entry> out;
  if (limit == 0) return out;
  bounded_iter bi(impl_->db_.db(), impl_->db_.cf(cf_conflicts), keys::space_prefix(impl_->space_));
  for (bi.it->SeekToFirst(); bi.it->Valid() && out.size() < limit; bi.it->Next()) {
    auto c = decode_conflict(*impl_, bi.it->key().ToStringView(), bi.it->value().ToStringView());
    if (!c) return std::move(c).err();
    if (unresolved_only && c->resolved) continue;
    out.push_back(std::move(c).value());
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "conflicts");
  return out;
}

result<conflict_entry> node_store::conflict(uint64_t id) const {
  const auto k = keys::numbered(impl_->space_, id);
  std::string value;
  auto s = impl_->db_.db()->Get(rocksdb::ReadOptions(), impl_->db_.cf(cf_conflicts), k, &value);
  if (s.IsNotFound()) return error(errc::not_found, "no conflict " + std::to_string(id));
  if (!s.ok()) return map_status(s, "conflict");
  return decode_conflict(*impl_, k, value);
}

status node_store::mark_conflict_resolved(uint64_t id, const std::string& by, const std::string& resolution) {
  auto* im = impl_.get();
  return im->commit(
      [im, id, by, resolution](txn& t, std::vector<change>&) -> status {
        const auto k = keys::numbered(im->space_, id);
        std::string value;
        auto s = im->db_.db()->Get(rocksdb::ReadOptions(), im->db_.cf(cf_conflicts), k, &value);
        if (s.IsNotFound()) return error(errc::not_found, "no conflict " + std::to_string(id));
        if (!s.ok()) return map_status(s, "conflict");
        v1::ConflictEntry e;
        auto c = decode_conflict(*im, k, value, &e);
        if (!c) return std::move(c).err();
        e.set_resolved(true);
        e.set_resolved_by(by);
        e.set_resolution(resolution);
        core::to_proto(im->clock_now(), e.mutable_resolved_at());
        auto sealed = im->seal('c', k, e.SerializeAsString());
        if (!sealed) return std::move(sealed).err();
        t.put(cf_conflicts, k, std::move(sealed).value());
        return status();
      },
      nullptr);
}

status node_store::record_session(const session_audit& a) {
  v1::SessionAudit p;
  p.set_peer(a.peer);
  p.set_peer_role(a.peer_role);
  p.set_started_ms(a.started_ms);
  p.set_ended_ms(a.ended_ms);
  p.set_records_up(a.records_up);
  p.set_records_down(a.records_down);
  p.set_bytes_up(a.bytes_up);
  p.set_bytes_down(a.bytes_down);
  p.set_result(a.result);
  if (a.kind != "session") p.set_kind(a.kind);
  p.set_actor(a.actor);
  p.set_action(a.action);
  p.set_detail(a.detail);
  auto* im = impl_.get();
  return im->commit(
      [im, value = p.SerializeAsString()](txn& t, std::vector<change>&) {
        t.put(cf_audit, keys::numbered(im->space_, ++im->scratch_.audit_seq), value);
        return status();
      },
      nullptr);
}

result<std::vector<session_audit>> node_store::sessions(size_t limit) const {
  std::vector<session_audit> out;
  if (limit == 0) return out;
  bounded_iter bi(impl_->db_.db(), impl_->db_.cf(cf_audit), keys::space_prefix(impl_->space_));
  for (bi.it->SeekToLast(); bi.it->Valid() && out.size() < limit; bi.it->Prev()) {
    v1::SessionAudit p;
    auto v = bi.it->value();
    if (!p.ParseFromArray(v.data(), static_cast<int>(v.size())))
      return error(errc::data_loss, "session audit entry does not parse");
    session_audit a;
    a.peer = p.peer();
    a.peer_role = p.peer_role();
    a.started_ms = p.started_ms();
    a.ended_ms = p.ended_ms();
    a.records_up = p.records_up();
    a.records_down = p.records_down();
    a.bytes_up = p.bytes_up();
    a.bytes_down = p.bytes_down();
    a.result = p.result();
    a.seq = keys::get_u64(bi.it->key().ToStringView(), 4);
    if (!p.kind().empty()) a.kind = p.kind();
    a.actor = p.actor();
    a.action = p.action();
    a.detail = p.detail();
    out.push_back(std::move(a));
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "sessions");
  return out;
}

core::hlc_timestamp node_store::clock_now() { return impl_->clock_now(); }
core::hlc_timestamp node_store::clock_update(const core::hlc_timestamp& remote) {
  return impl_->clock_update(remote);
}

bool reserved_meta(std::string_view name) {
  for (const char* r : {"node_id", "schema_version", "hlc", "conflict_seq", "audit_seq", "dot_floor", "counter_node",
                        "encrypted"})
    if (name == r) return true;
  return name.substr(0, 9) == "lane_seq/";
}

result<std::optional<std::string>> node_store::get_meta(std::string_view name) const {
  if (name.empty()) return error(errc::invalid_argument, "get_meta: empty name");
  std::string v;
  auto s = impl_->db_.db()->Get(rocksdb::ReadOptions(), impl_->db_.cf(cf_meta), keys::meta(impl_->space_, name), &v);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return map_status(s, "get_meta");
  return std::optional<std::string>(std::move(v));
}

status node_store::put_meta(std::string_view name, std::string value) {
  if (name.empty()) return error(errc::invalid_argument, "put_meta: empty name");
  if (reserved_meta(name))
    return error(errc::invalid_argument, "put_meta: '" + std::string(name) + "' is kept by the store itself");
  return impl_->commit(
      [k = keys::meta(impl_->space_, name), v = std::move(value)](txn& t, std::vector<change>&) {
        t.put(cf_meta, k, v);
        return status();
      },
      nullptr);
}

void node_store::set_listener(commit_listener l) {
  auto p = std::make_shared<commit_listener>(std::move(l));
  std::lock_guard<std::mutex> lk(impl_->listener_mu_);
  impl_->listener_ = std::move(p);
}

} // namespace possync::storage

namespace possync::storage {

// -- lifecycle ------------------------------------------------------------------------------

std::optional<core::record> decode_outbox(std::string_view plain) {
  v1::OutboxEntry oe;
  if (!oe.ParseFromArray(plain.data(), static_cast<int>(plain.size()))) return std::nullopt;
  core::record r;
  r.key = core::from_proto(oe.key());
  auto vs = decode_versions(oe.versions(), "outbox entry");
  if (!vs) return std::nullopt;
  r.versions = std::move(vs).value();
  return r;
}

status node_store_impl::prepare_start_over(txn& t, start_over_options& o, start_over_report& rep,
                                           std::vector<change>& ch) {
  const std::string space = keys::space_prefix(space_);
  if (!o.requeue) {
    // This store's own outbox, read in this request: a write committed just before is
    // in it, one committed after comes after the wipe.
    o.requeue.emplace();
    for (uint8_t l = 0; l < core::lane_count; ++l) {
      auto prefix = keys::outbox_prefix(space_, l);
      auto ks = t.keys_in(cf_outbox, prefix, keys::prefix_end(prefix));
      if (!ks) return std::move(ks).err();
      for (const auto& k : *ks) {
        auto v = t.get(cf_outbox, k);
        if (!v) return std::move(v).err();
        auto plain = v->has_value() ? open_value('o', k, **v) : result<std::string>(std::string());
        auto rec = plain ? decode_outbox(*plain) : std::nullopt;
        if (!rec) {
          ++rep.unreadable;
          continue;
        }
        (*o.requeue)[l].push_back(std::move(*rec));
      }
    }
  }
  // Records of o.keep are read as the wipe passes them, and filed again further down.
  std::vector<core::record> kept;
  auto keep = [&](const std::string& k) {
    if (o.keep.empty()) return;
    auto key = keys::parse_record(std::string_view(k).substr(space.size()));
    if (!key || std::find(o.keep.begin(), o.keep.end(), key->collection) == o.keep.end()) return;
    auto cur = load(t, *key, k);
    // What does not read or validate is not kept: the download brings it again.
    if (!cur || cur->rec.empty() || core::validate_record(cur->rec, *reg_, opts_.limits)) return;
    kept.push_back(std::move(cur->rec));
  };
  for (int cf : {cf_records, cf_feed, cf_outbox, cf_cursors, cf_conflicts, cf_audit, cf_index}) {
    auto ks = t.keys_in(static_cast<cf_id>(cf), space, keys::prefix_end(space));
    if (!ks) return std::move(ks).err();
    for (auto& k : *ks) {
      if (cf == cf_records) keep(k);
      t.del(static_cast<cf_id>(cf), std::move(k));
    }
  }
  {
    // Session state (sync.upstream: whom we synced with, so that it skips our own
    // writes) goes; identity and the upper layers' settings stay.
    auto prefix = keys::meta(space_, "sync.");
    auto ks = t.keys_in(cf_meta, prefix, keys::prefix_end(prefix));
    if (!ks) return std::move(ks).err();
    for (auto& k : *ks) t.del(cf_meta, std::move(k));
  }
  scratch_.pending = {};
  // The floor rises by at least dot_span per rebuild, even when the clock o.floor comes
  // from has gone back since the last one: lane sequences (downstream cursors into this
  // feed) and dots never go back. Dots are kept apart by the new writer id as well.
  scratch_.dot_floor = std::max(o.floor, scratch_.dot_floor + dot_span);
  for (auto& seq : scratch_.lane_seq) seq = std::max(seq, scratch_.dot_floor);
  for (uint8_t l = 0; l < core::lane_count; ++l)
    scratch_.ack_floor[l] = scratch_.lane_seq[l] + 1;
  scratch_.counter_node = rep.counter_node;
  rep.floor = scratch_.dot_floor;
  if (!kept.empty()) {
    apply_result out;
    if (auto s = prepare_apply(t, kept, /*from_downstream=*/false, out, ch)) return s;
    rep.kept = out.applied;
  }
  for (uint8_t l = 0; l < core::lane_count; ++l) {
    auto& states = (*o.requeue)[l];
    std::vector<core::record> ok;
    ok.reserve(states.size());
    for (auto& r : states) {
      if (core::validate_record(r, *reg_, opts_.limits) || reg_->find(r.key.collection)->lane != l) {
        ++rep.invalid;
        continue;
      }
      ok.push_back(std::move(r));
    }
    apply_result out;
    if (auto s = prepare_apply(t, ok, /*from_downstream=*/true, out, ch)) return s;
    rep.requeued[l] = opts_.outbox ? out.applied : 0;
  }
  return status();
}

result<start_over_report> node_store::start_over(start_over_options opts) {
  auto* im = impl_.get();
  if (opts.floor == 0) opts.floor = static_cast<uint64_t>(im->opts_.clock()) << 16;
  struct state {
    start_over_options o;
    start_over_report rep;
  };
  auto st = std::make_shared<state>();
  st->o = std::move(opts);
  {
    std::lock_guard<std::mutex> lk(im->ulid_mu_);
    do {
      st->rep.counter_node = core::new_node_id(*im->opts_.rng);
    } while (st->rep.counter_node == im->node_ || st->rep.counter_node == counter_node());
  }
  auto s = im->commit([im, st](txn& t, std::vector<change>& ch) { return im->prepare_start_over(t, st->o, st->rep, ch); },
                      nullptr);
  if (s) return s;
  for (size_t i = 0; i < im->collection_slot_.size(); ++i)
    im->collection_changes_[i].fetch_add(1, std::memory_order_release);
  return st->rep;
}

uint64_t node_store::dot_floor() const { return impl_->dot_floor_pub_.load(std::memory_order_acquire); }
core::node_id node_store::counter_node() const { return impl_->counter_node_pub_.load(std::memory_order_acquire); }

status node_store_impl::prepare_purge(txn& t, const std::vector<core::record_key>& candidates, int64_t before_ms,
                                      uint64_t& purged) {
  for (const auto& key : candidates) {
    const auto* info = reg_->find(key.collection);
    if (!info || info->lane != core::lane_sales) continue;
    auto cur = load(t, key);
    if (!cur) return std::move(cur).err();
    if (!cur->exists || cur->rec.empty()) continue;
    int64_t newest = 0;
    for (const auto& v : cur->rec.versions) newest = std::max(newest, static_cast<int64_t>(v.hlc.wall_ms));
    if (newest >= before_ms) continue;
    // Checked again here, in the commit: an entry queued since the caller looked stays.
    auto queued = t.get(cf_outbox, keys::outbox(space_, info->lane, cur->feed_seq));
    if (!queued) return std::move(queued).err();
    if (queued->has_value()) continue;
    t.del(cf_records, keys::record(space_, key));
    t.del(cf_feed, keys::feed(space_, key.tenant, key.scope, info->lane, cur->feed_seq));
    core::record gone;
    gone.key = key;
    if (auto s = update_indexes(t, *info, cur->rec, gone)) return s;
    ++purged;
  }
  return status();
}

result<uint64_t> node_store::purge_sales(int64_t before_ms, size_t limit) {
  auto* im = impl_.get();
  if (im->opts_.role == node_role::hq)
    return error(errc::failed_precondition, "HQ keeps every sale: retention applies to terminals and branches");
  // Keys still waiting in the sales lane of the outbox (whatever seq they sit at).
  std::set<std::string> queued;
  for (uint64_t after = 0;;) {
    auto w = outbox_window(core::lane_sales, after, 1000);
    if (!w) return std::move(w).err();
    for (const auto& e : *w) queued.insert(keys::record(im->space_, e.rec.key));
    if (w->size() < 1000) break;
    after = w->back().seq;
  }
  constexpr size_t batch = 1000;
  uint64_t purged = 0;
  std::vector<core::record_key> candidates;
  auto flush = [&]() -> status {
    if (candidates.empty()) return status();
    auto s = im->commit(
        [im, &candidates, before_ms, &purged](txn& t, std::vector<change>&) {
          return im->prepare_purge(t, candidates, before_ms, purged);
        },
        nullptr);
    candidates.clear();
    return s;
  };
  bounded_iter bi(im->db_.db(), im->db_.cf(cf_feed), keys::space_prefix(im->space_));
  for (bi.it->SeekToFirst(); bi.it->Valid() && purged + candidates.size() < limit; bi.it->Next()) {
    // feed key: space tenant\0scope\0 lane seq(8); value: collection\0id
    auto k = bi.it->key().ToStringView();
    auto t_end = k.find('\0', 4);
    auto s_end = t_end == std::string_view::npos ? t_end : k.find('\0', t_end + 1);
    if (s_end == std::string_view::npos || k.size() != s_end + 10) continue;
    if (static_cast<uint8_t>(k[s_end + 1]) != core::lane_sales) continue;
    auto v = bi.it->value().ToStringView();
    auto sep = v.find('\0');
    if (sep == std::string_view::npos) continue;
    core::record_key key{std::string(k.substr(4, t_end - 4)), std::string(k.substr(t_end + 1, s_end - t_end - 1)),
                         std::string(v.substr(0, sep)), std::string(v.substr(sep + 1))};
    if (queued.count(keys::record(im->space_, key))) continue;
    candidates.push_back(std::move(key));
    if (candidates.size() == batch)
      if (auto s = flush()) return s;
  }
  if (!bi.it->status().ok()) return map_status(bi.it->status(), "purge_sales");
  if (auto s = flush()) return s;
  return purged;
}

} // namespace possync::storage
