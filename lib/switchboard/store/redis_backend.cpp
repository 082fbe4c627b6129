#include "switchboard/store/redis_backend.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <unordered_map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "switchboard/clock.hpp"
#include "switchboard/log.hpp"
#include "switchboard/log_throttle.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/redis/connection.hpp"
#include "switchboard/redis/subscriber.hpp"
#include "switchboard/spawn.hpp"
#include "switchboard/store/redis_codec.hpp"
#include "switchboard/store/redis_scripts.hpp"

namespace switchboard::store {

namespace {

namespace codec = redis_codec;
using redis::reply;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Redis refuses expiry times that overflow its clock; a century is "never"
// for an inbox or a dedup entry.
constexpr std::int64_t max_ttl_ms = 100LL * 365 * 24 * 3600 * 1000;

// How long an acknowledged message stays in the inbox (redis_scripts.hpp,
// append): longer than a lost subscription takes to be noticed and repaired
// (a deadline, a reconnection, a resync), so that a session on another node
// can still fill its gap after another session of the user moved the cursor.
constexpr std::chrono::milliseconds ack_grace{60000};

// How long a dedup entry and a node's marker in an applied hash are kept at
// least: longer than a batch whose reply was lost can wait for its rerun.
constexpr std::chrono::milliseconds rerun_keep{60000};

// Thrown by call() when the commands may have run (redis::indeterminate).
class maybe_ran : public unavailable {
 public:
  using unavailable::unavailable;
};

// A random marker per start, so that reruns never mistake another start's
// (or another node's) appends for their own.
std::string start_marker() {
  std::random_device rd;
  char text[24];
  std::snprintf(text, sizeof text, "%08x%08x", rd(), rd());
  return text;
}

std::int64_t ttl_ms(std::chrono::seconds window) {
  if (window.count() >= max_ttl_ms / 1000) return max_ttl_ms;
  return window.count() * 1000;
}

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xf];
  }
  return out;
}

// A script and its SHA1, the name EVALSHA calls it by.
struct script {
  explicit script(const char* text) : source(text), sha(sha1_hex(text)) {}
  std::string source;
  std::string sha;
};

std::uint64_t as_u64(const reply& r) {
  if (r.type == reply::kind::integer && r.integer >= 0)
    return static_cast<std::uint64_t>(r.integer);
  if (r.type == reply::kind::string) {
    if (auto v = codec::parse_u64(r.str)) return *v;
  }
  throw std::runtime_error("redis: unexpected reply (" + std::string(redis::to_string(r.type)) +
                           " " + r.str + ")");
}

std::int64_t as_i64(const reply& r) {
  if (r.type == reply::kind::integer) return r.integer;
  if (r.type == reply::kind::string) {
    try {
      std::size_t used = 0;
      const auto v = std::stoll(r.str, &used);
      if (used == r.str.size()) return v;
    } catch (const std::exception&) {
    }
  }
  throw std::runtime_error("redis: expected an integer, got " + r.str);
}

}  // namespace

struct redis_backend::impl {
  impl(asio::any_io_executor ex, redis_settings s, route_sink& sink_, metrics& stats_)
      : executor(ex),
        settings(std::move(s)),
        sink(sink_),
        stats(stats_),
        append_script(redis_scripts::append),
        append_group_script(redis_scripts::append_group),
        add_member_script(redis_scripts::add_member),
        remove_member_script(redis_scripts::remove_member),
        fetch_script(redis_scripts::fetch),
        open_script(redis_scripts::open),
        refresh_script(redis_scripts::refresh),
        close_script(redis_scripts::close),
        mark_script(redis_scripts::mark),
        commands(ex, endpoint(true), options(), counters, setup()),
        subscriber(ex, endpoint(false), options(), counters),
        lock(ex, 1),
        lease_timer(ex) {}

  redis::endpoint endpoint(bool with_db) const {
    redis::endpoint ep;
    ep.host = settings.host;
    ep.port = settings.port;
    if (!settings.user.empty()) ep.user = settings.user;
    ep.password = settings.password;
    ep.db = with_db ? settings.db : 0;
    return ep;
  }
  redis::options options() const {
    redis::options o;
    o.deadline = settings.deadline;
    return o;
  }
  // Loaded again on every connection: a restarted Redis forgot them.
  std::vector<std::vector<std::string>> setup() const {
    std::vector<std::vector<std::string>> out;
    for (const auto* s :
         {&append_script, &append_group_script, &add_member_script, &remove_member_script,
          &fetch_script, &open_script, &refresh_script, &close_script, &mark_script})
      out.push_back({"SCRIPT", "LOAD", s->source});
    return out;
  }

  // One pipelined round trip on the command connection. The connection
  // takes one call at a time; the worker, the lease renewal and the resync
  // after a lost subscription take turns through `lock`.
  asio::awaitable<std::vector<reply>> call(std::string text, std::size_t count) {
    co_await lock.async_send(boost::system::error_code{}, asio::use_awaitable);
    struct release {
      lock_type& lock;
      ~release() {
        lock.try_receive([](boost::system::error_code) {});
      }
    } guard{lock};
    const auto started = std::chrono::steady_clock::now();
    try {
      auto replies = co_await commands.exec(std::move(text), count);
      stats.redis_round_trips_total.fetch_add(1, std::memory_order_relaxed);
      stats.redis_round_trip_seconds.observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      co_return replies;
    } catch (const redis::indeterminate& e) {
      throw maybe_ran(e.what());
    } catch (const redis::unavailable& e) {
      throw unavailable(e.what());
    }
  }

  // Whether a batch whose call failed after it was sent (maybe_ran) may run
  // again, waiting until it may: not before every script of that call is
  // past its deadline (half the call deadline after `attempt`, plus the
  // other half for clocks that disagree), so that none of them can run after
  // the rerun; and only while a rerun can still answer within the budget
  // counted from the batch's first call.
  asio::awaitable<bool> wait_for_rerun(std::chrono::steady_clock::time_point first,
                                       std::chrono::steady_clock::time_point attempt) {
    const auto not_before = attempt + settings.deadline;
    const auto last_start = first + settings.answer_budget - settings.deadline;
    asio::steady_timer pause(executor);
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (stopped || now > last_start) co_return false;
      if (now >= not_before && commands.connected()) co_return true;
      pause.expires_after(std::chrono::milliseconds(50));
      co_await pause.async_wait(use_tuple);
    }
  }

  bool available() const { return commands.connected() && subscriber.connected(); }

  void state_changed() {
    const bool up = available();
    if (stats.store_available.exchange(up, std::memory_order_relaxed) == up) return;
    if (up)
      SB_LOG(info) << "store: Redis " << settings.host << ":" << settings.port << " available";
    else
      SB_LOG(warn) << "store: Redis " << settings.host << ":" << settings.port
                   << " unavailable: SENDs get ERROR unavailable until it answers again";
  }

  void on_message(std::string_view channel, std::string_view payload) {
    stats.redis_publishes_received_total.fetch_add(1, std::memory_order_relaxed);
    const auto user = codec::channel_user(channel, settings.db);
    if (!user) return;
    auto it = users.find(*user);
    if (it == users.end()) return;  // unsubscribed meanwhile
    auto published = codec::decode_published(payload, *user);
    if (auto* m = std::get_if<codec::published_message>(&published)) {
      it->second.seen = std::max(it->second.seen, m->message.seq);
      const bool holding_user =
          !held_statuses.empty() &&
          std::any_of(held_statuses.begin(), held_statuses.end(),
                      [&](const stored_message& h) { return h.receiver == m->message.receiver; });
      if ((m->message.kind == entry_kind::status && appends_in_flight > 0) || holding_user) {
        // A STATUS may cover a message of an append whose reply has not
        // come back yet: its receipt must reach the sender first
        // (PROTOCOL.md section 11). Held until no append is in flight, and
        // so is what comes after it in the same inbox (seq order).
        held_statuses.push_back(std::move(m->message));
        return;
      }
      sink.message(std::move(m->message));
    } else if (auto* k = std::get_if<codec::published_kick>(&published)) {
      sink.replaced(*user, std::move(k->session_id));
    }
  }

  // After the subscriber (re)connected: whatever was published while it was
  // away is lost, so every user with a session here is brought up to date
  // from the inbox, also when no later message comes (PROTOCOL.md
  // section 7). Retried until it succeeds or the subscriber drops again.
  asio::awaitable<void> resync() {
    asio::steady_timer pause(executor);
    while (!stopped && subscriber.connected()) {
      std::vector<user_id> ids;
      std::string text;
      for (const auto& [id, routing] : users) {
        ids.push_back(id);
        redis::append_command(text, {"GET", codec::seq_key(id)});
      }
      if (ids.empty()) co_return;
      try {
        auto replies = co_await call(std::move(text), ids.size());
        for (std::size_t i = 0; i < ids.size(); ++i) {
          const seq_t highest = replies[i].type == reply::kind::nil ? 0 : as_u64(replies[i]);
          // What Redis holds now is the truth: also lower than what was
          // published before, if Redis came back empty.
          if (auto it = users.find(ids[i]); it != users.end()) it->second.seen = highest;
          sink.inbox_at(ids[i], highest);
        }
        SB_LOG(info) << "store: " << ids.size() << " users brought up to date after a "
                     << "reconnection";
        co_return;
      } catch (const std::exception& e) {
        SB_LOG(debug) << "store: resync failed, trying again: " << e.what();
      }
      pause.expires_after(std::chrono::milliseconds(200));
      co_await pause.async_wait(use_tuple);
    }
  }

  // Renews the lease of every session of this node, a third of a lease
  // apart, so that a node that dies has its sessions forgotten a lease
  // later and a live one never does.
  asio::awaitable<void> renew_leases() {
    const auto period = std::max<std::chrono::milliseconds>(settings.session_lease / 3,
                                                            std::chrono::milliseconds(100));
    while (!stopped) {
      lease_timer.expires_after(period);
      auto [ec] = co_await lease_timer.async_wait(use_tuple);
      if (ec || stopped) co_return;
      if (sessions.empty() || !commands.connected()) continue;
      std::vector<std::pair<std::string, user_id>> batch(sessions.begin(), sessions.end());
      std::string text;
      const auto lease = std::to_string(settings.session_lease.count());
      for (const auto& [id, user] : batch)
        redis::append_command(text, {"EVALSHA", refresh_script.sha, "2", codec::sessions_key(user),
                                     codec::seen_key(user), id, lease});
      try {
        auto replies = co_await call(std::move(text), batch.size());
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (replies[i].type == reply::kind::integer && replies[i].integer == 0 &&
              sessions.contains(batch[i].first)) {
            // Closed as replaced while this node missed the notice, or
            // forgotten while it could not reach Redis: the cluster no
            // longer counts it, so it goes.
            sink.replaced(batch[i].second, batch[i].first);
          }
        }
      } catch (const std::exception& e) {
        SB_LOG(debug) << "store: lease renewal failed: " << e.what();
      }
    }
  }

  using lock_type = asio::experimental::channel<void(boost::system::error_code)>;
  struct routing {
    std::size_t sessions = 0;  // this node's sessions of the user
    seq_t seen = 0;            // the highest seq published to it since it subscribed
  };

  asio::any_io_executor executor;
  redis_settings settings;
  route_sink& sink;
  metrics& stats;
  script append_script;
  script append_group_script;
  script add_member_script;
  script remove_member_script;
  script fetch_script;
  script open_script;
  script refresh_script;
  script close_script;
  script mark_script;
  redis::counters counters;
  redis::connection commands;
  redis::subscriber subscriber;
  lock_type lock;  // holds one token while a call is in flight
  asio::steady_timer lease_timer;
  const std::string marker = start_marker();
  std::uint64_t appended = 0;  // counter of appends without an id (the marker's values)
  // STATUS entries heard while an append was in flight (on_message): the
  // store worker posts an append's receipts when the call returns, and a
  // STATUS published by another node's cursor move can overtake the reply
  // (Redis interleaves a long pipelined batch with other clients).
  unsigned appends_in_flight = 0;
  std::vector<stored_message> held_statuses;
  std::unordered_map<user_id, routing> users;         // subscribed users
  std::unordered_map<std::string, user_id> sessions;  // this node's sessions, by id
  bool stopped = false;
};

redis_backend::redis_backend(asio::any_io_executor executor, redis_settings settings,
                             route_sink& sink, metrics& stats)
    : impl_(std::make_shared<impl>(executor, std::move(settings), sink, stats)) {
  stats.cluster.store(true, std::memory_order_relaxed);
  stats.store_available.store(false, std::memory_order_relaxed);
}

redis_backend::~redis_backend() {
  stop();
}

void redis_backend::start() {
  auto& d = *impl_;
  d.commands.on_state = [&d](bool) {
    d.stats.redis_reconnects_total.store(d.counters.reconnects.load(std::memory_order_relaxed),
                                         std::memory_order_relaxed);
    d.state_changed();
  };
  d.subscriber.on_state = d.commands.on_state;
  d.subscriber.on_message = [&d](std::string_view channel, std::string_view payload) {
    d.on_message(channel, payload);
  };
  // Weak: the subscriber belongs to the impl, so a strong reference here
  // would be a cycle that outlives the server.
  d.subscriber.on_connected = [weak = std::weak_ptr<impl>(impl_)] {
    auto self = weak.lock();
    if (!self || self->stopped) return;
    self->state_changed();
    asio::co_spawn(
        self->executor, [self]() { return self->resync(); }, log_exception("redis resync"));
  };
  d.commands.start();
  d.subscriber.start();
  asio::co_spawn(
      d.executor, [self = impl_]() { return self->renew_leases(); },
      log_exception("redis lease renewal"));
  SB_LOG(info) << "store: cluster node " << d.settings.node_id << " on Redis " << d.settings.host
               << ":" << d.settings.port << " db " << d.settings.db;
}

void redis_backend::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->lease_timer.cancel();
  impl_->commands.stop();
  impl_->subscriber.stop();
}

bool redis_backend::available() const {
  return impl_->available();
}

asio::awaitable<append_outcome> redis_backend::append(std::span<const append_request> batch) {
  auto self = impl_;
  auto& d = *self;
  append_outcome outcome;
  if (batch.empty()) co_return outcome;
  // While this call is in flight, STATUS entries heard are held; after it,
  // they go to the hub behind this call's receipts: released by a post, so
  // after the worker, resumed when this returns, has pushed them.
  ++d.appends_in_flight;
  struct release_statuses {
    std::shared_ptr<impl> d;
    ~release_statuses() {
      if (--d->appends_in_flight != 0 || d->held_statuses.empty()) return;
      asio::post(d->executor, [d = d] {
        if (d->appends_in_flight != 0) return;  // another took over: it releases them
        for (auto& m : std::exchange(d->held_statuses, {}))
          d->sink.message(std::move(m));
      });
    }
  } release{self};
  const auto window = d.settings.limits.dedup_window;
  const auto window_ms = std::to_string(ttl_ms(window));
  const auto dedup_keep_ms = std::to_string(std::max(ttl_ms(window), rerun_keep.count()));
  const auto marker_keep_ms = std::to_string(rerun_keep.count());
  const auto retention_ms =
      std::to_string(std::max<std::int64_t>(1, ttl_ms(d.settings.limits.retention)));
  const auto limit = std::to_string(d.settings.limits.inbox_limit);
  // Lua counts in doubles: a bound beyond any inbox is written as one it
  // can read exactly.
  const auto limit_bytes = std::to_string(
      std::min<std::uint64_t>(d.settings.limits.inbox_bytes, std::uint64_t{1} << 50));
  const auto grace_ms = std::to_string(ack_grace.count());
  const auto forget_ms = std::to_string(device_forget_ms(d.settings.limits.device_ttl));
  // The counters of the messages without an id: the same in every rerun.
  const auto first_counter = d.appended + 1;
  d.appended += batch.size();

  const auto first_call = std::chrono::steady_clock::now();
  bool rerun = false;
  std::vector<reply> replies;
  for (;;) {
    const auto attempt = std::chrono::steady_clock::now();
    // A script still queued in Redis after half the deadline refuses to
    // run: its sender was (or is about to be) told that it failed. The
    // other half is the margin for clocks of nodes and Redis that disagree.
    const auto deadline = std::to_string(unix_ms() + d.settings.deadline.count() / 2);
    std::string text;
    text.reserve(batch.size() * 256);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& r = batch[i];
      const auto message = codec::encode_message(r.ts_ms, r.sender, r.id, r.content);
      const auto ts = std::to_string(r.ts_ms);
      const auto size = std::to_string(held_bytes(r.content));
      const auto counter = std::to_string(first_counter + i);
      const std::string_view marker_arg = r.id ? std::string_view() : d.marker;
      const std::string_view counter_arg = r.id ? std::string_view() : counter;
      const std::string_view rerun_arg = r.id ? std::string_view() : (rerun ? "1" : "0");
      const std::string_view keep = r.id ? dedup_keep_ms : marker_keep_ms;
      if (r.group != 0) {
        // The members' keys are named by the script (redis_scripts.hpp).
        const auto members_key = codec::group_members_key(r.group);
        const auto gseq_key = codec::group_seq_key(r.group);
        const auto third_key =
            r.id ? codec::dedup_key(r.sender, *r.id) : codec::group_applied_key(r.group);
        const auto db = std::to_string(d.settings.db);
        const auto sender = std::to_string(r.sender);
        const auto group = std::to_string(r.group);
        std::array<std::string_view, 23> args{"EVALSHA",   d.append_group_script.sha,
                                              "3",         members_key,
                                              gseq_key,    third_key,
                                              message,     ts,
                                              deadline,    window_ms,
                                              limit,       retention_ms,
                                              db,          sender,
                                              grace_ms,    keep,
                                              limit_bytes, size,
                                              marker_arg,  counter_arg,
                                              rerun_arg,   forget_ms,
                                              group};
        redis::append_command(text, args);
        continue;
      }
      const auto channel = codec::channel(r.receiver, d.settings.db);
      const auto receiver = std::to_string(r.receiver);
      const auto seq_key = codec::seq_key(r.receiver);
      const auto inbox_key = codec::inbox_key(r.receiver);
      const auto cursor_key = codec::cursor_key(r.receiver);
      const auto bytes_key = codec::inbox_bytes_key(r.receiver);
      const auto seen_key = codec::seen_key(r.receiver);
      // KEYS[4] is the dedup entry of a message with an id, the receiver's
      // applied hash for one without (which also gets its marker's args).
      const auto fourth_key =
          r.id ? codec::dedup_key(r.sender, *r.id) : codec::applied_key(r.receiver);
      // KEYS[7] and KEYS[8]: the receiver's notify-messages (section 11).
      const auto notify_key = codec::notify_key(r.receiver);
      const auto unread_key = codec::unread_key(r.receiver);
      const auto sender = std::to_string(r.sender);
      const bool notify = r.notify && r.id;
      std::array<std::string_view, 29> args{"EVALSHA",    d.append_script.sha,
                                            "8",          seq_key,
                                            inbox_key,    cursor_key,
                                            fourth_key,   bytes_key,
                                            seen_key,     notify_key,
                                            unread_key,   message,
                                            ts,           deadline,
                                            window_ms,    limit,
                                            retention_ms, channel,
                                            receiver,     grace_ms,
                                            keep,         limit_bytes,
                                            size,         marker_arg,
                                            counter_arg,  rerun_arg,
                                            forget_ms,    notify ? "1" : "0",
                                            sender};
      redis::append_command(text, args);
    }
    std::string lost;
    try {
      replies = co_await d.call(std::move(text), batch.size());
      break;
    } catch (const maybe_ran& e) {
      lost = e.what();
    }
    // Redis may have stored a prefix of the batch and published it:
    // answering `unavailable` now could refuse a message that is then
    // delivered. The batch runs again instead; what the lost call stored is
    // found, not stored twice (redis_scripts.hpp, append).
    SB_LOG(info) << "store: the reply to " << batch.size()
                 << " appends was lost; running them again once Redis answers: " << lost;
    if (!co_await d.wait_for_rerun(first_call, attempt))
      throw unavailable("Redis did not answer in time: " + lost);
    rerun = true;
    d.stats.redis_append_reruns_total.fetch_add(1, std::memory_order_relaxed);
  }
  outcome.results.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& r = replies[i];
    append_result result;
    if (r.type != reply::kind::array || r.elements.empty() || r.is_error()) {
      // An error reply (out of memory, a script error): this message alone.
      static log_throttle throttle(5, std::chrono::seconds(1));
      if (std::uint64_t held = 0; r.is_error() && throttle.allow(held))
        SB_LOG(warn) << "store: Redis refused an append: " << r.str << held_back(held);
      result.refused = true;
    } else {
      const auto status = as_i64(r.elements[0]);
      const bool group = batch[i].group != 0;
      if (status == 1 && group && r.elements.size() >= 3 && r.elements.size() % 2 == 1) {
        result.group = batch[i].group;
        result.gseq = as_u64(r.elements[1]);
        result.ts_ms = batch[i].ts_ms;
        outcome.evicted += as_u64(r.elements[2]);
        result.first_copy = static_cast<std::uint32_t>(outcome.copies.size());
        for (std::size_t c = 3; c + 1 < r.elements.size(); c += 2)
          outcome.copies.push_back(group_copy{as_u64(r.elements[c]), as_u64(r.elements[c + 1])});
        // Ascending by member, as the other stores give them (SMEMBERS has no order).
        std::sort(outcome.copies.begin() + result.first_copy, outcome.copies.end(),
                  [](const group_copy& a, const group_copy& b) { return a.member < b.member; });
        result.copies = static_cast<std::uint32_t>(outcome.copies.size()) - result.first_copy;
      } else if (status == 1 && r.elements.size() >= 3) {
        result = append_result{true, batch[i].receiver, as_u64(r.elements[1]), batch[i].ts_ms};
        outcome.evicted += as_u64(r.elements[2]);
      } else if (status == 0 && r.elements.size() >= 4) {
        result = append_result{false, as_u64(r.elements[1]), as_u64(r.elements[2]),
                               as_i64(r.elements[3])};
        if (r.elements.size() >= 5 && as_i64(r.elements[4]) == 1) {
          // The original was a group message: its receipt has group and gseq.
          result.group = result.receiver;
          result.gseq = result.seq;
          result.receiver = 0;
          result.seq = 0;
        }
      } else if (status == 2) {
        // Stored by the call whose reply was lost: nothing to tell (no id).
        result = append_result{false, batch[i].receiver, 0, batch[i].ts_ms};
        result.group = batch[i].group;
      } else if (status == 3 && group) {
        result.stored = false;
        result.not_member = true;
      } else {
        result.refused = true;  // -1: past its deadline, nothing done
      }
    }
    outcome.results.push_back(result);
  }
  co_return outcome;
}

asio::awaitable<membership_change> redis_backend::add_member(group_id group, user_id user) {
  auto self = impl_;
  std::string text;
  redis::append_command(
      text, {"EVALSHA", self->add_member_script.sha, "2", codec::group_members_key(group),
             codec::user_groups_key(user), std::to_string(user), std::to_string(group),
             std::to_string(std::min<std::size_t>(self->settings.limits.max_group_members,
                                                  std::size_t{1} << 50))});
  auto replies = co_await self->call(std::move(text), 1);
  if (replies[0].is_error()) throw unavailable("Redis refused a membership: " + replies[0].str);
  co_return as_i64(replies[0]) == 1 ? membership_change::done : membership_change::full;
}

asio::awaitable<void> redis_backend::remove_member(group_id group, user_id user) {
  auto self = impl_;
  std::string text;
  redis::append_command(
      text, {"EVALSHA", self->remove_member_script.sha, "2", codec::group_members_key(group),
             codec::user_groups_key(user), std::to_string(user), std::to_string(group)});
  auto replies = co_await self->call(std::move(text), 1);
  if (replies[0].is_error()) throw unavailable("Redis refused a membership: " + replies[0].str);
}

namespace {
// The ids of a SMEMBERS reply, ascending.
std::vector<std::uint64_t> sorted_ids(const reply& r) {
  if (r.is_error()) throw unavailable("Redis refused a membership read: " + r.str);
  std::vector<std::uint64_t> out;
  out.reserve(r.elements.size());
  for (const auto& e : r.elements)
    if (auto id = codec::parse_u64(e.str)) out.push_back(*id);
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

asio::awaitable<std::vector<user_id>> redis_backend::members(group_id group) {
  auto self = impl_;
  std::string text;
  redis::append_command(text, {"SMEMBERS", codec::group_members_key(group)});
  auto replies = co_await self->call(std::move(text), 1);
  co_return sorted_ids(replies[0]);
}

asio::awaitable<std::vector<group_id>> redis_backend::groups_of(user_id user) {
  auto self = impl_;
  std::string text;
  redis::append_command(text, {"SMEMBERS", codec::user_groups_key(user)});
  auto replies = co_await self->call(std::move(text), 1);
  co_return sorted_ids(replies[0]);
}

asio::awaitable<user_position> redis_backend::open(session_key session) {
  auto self = impl_;
  auto& d = *self;
  const auto channel = codec::channel(session.user, d.settings.db);
  // Subscribed first, then the position read: whatever is stored after the
  // position is published to this node.
  ++d.users[session.user].sessions;
  try {
    co_await d.subscriber.subscribe(channel);
  } catch (const std::exception& e) {
    if (--d.users[session.user].sessions == 0) d.users.erase(session.user);
    throw unavailable(e.what());
  }
  std::vector<reply> replies;
  try {
    std::string text;
    redis::append_command(text,
                          {"EVALSHA", d.open_script.sha, "4", codec::sessions_key(session.user),
                           codec::seq_key(session.user), codec::cursor_key(session.user),
                           codec::seen_key(session.user), session.id, d.settings.node_id,
                           std::to_string(d.settings.session_lease.count()),
                           std::to_string(d.settings.max_sessions_per_user), channel,
                           codec::device_member(session.device),
                           std::to_string(device_forget_ms(d.settings.limits.device_ttl)),
                           std::to_string(d.settings.limits.max_devices_per_user)});
    replies = co_await d.call(std::move(text), 1);
    if (replies[0].is_error()) throw unavailable("Redis refused the session: " + replies[0].str);
    if (replies[0].type != reply::kind::array || replies[0].elements.size() != 2)
      throw unavailable("unexpected reply to the session script");
  } catch (...) {
    d.subscriber.unsubscribe(channel);
    if (--d.users[session.user].sessions == 0) d.users.erase(session.user);
    throw;
  }
  user_position position{as_u64(replies[0].elements[0]), as_u64(replies[0].elements[1])};
  // What pub/sub brought since the subscription may be newer than the
  // position: the session replays up to it. The hub hears of the session
  // before it hears anything the subscriber receives from now on (same
  // thread, no suspension between here and the registration).
  position.highest = std::max(position.highest, d.users[session.user].seen);
  d.sessions.emplace(std::string(session.id), session.user);
  co_return position;
}

asio::awaitable<void> redis_backend::close(session_key session) {
  auto self = impl_;
  auto& d = *self;
  d.sessions.erase(std::string(session.id));
  const auto channel = codec::channel(session.user, d.settings.db);
  d.subscriber.unsubscribe(channel);
  if (auto it = d.users.find(session.user); it != d.users.end() && --it->second.sessions == 0)
    d.users.erase(it);
  // The cluster stops counting it at once; if Redis cannot hear it now,
  // its lease lapses instead (and its device was seen until then).
  std::string text;
  redis::append_command(
      text, {"EVALSHA", d.close_script.sha, "2", codec::sessions_key(session.user),
             codec::seen_key(session.user), session.id, codec::device_member(session.device)});
  auto replies = co_await d.call(std::move(text), 1);
  if (replies[0].is_error()) throw unavailable("Redis refused a session's end: " + replies[0].str);
}

asio::awaitable<std::vector<stored_message>> redis_backend::fetch(user_id user, seq_t after,
                                                                  std::size_t max_count,
                                                                  std::size_t max_bytes) {
  std::vector<stored_message> out;
  if (max_count == 0 || after == std::numeric_limits<seq_t>::max()) co_return out;
  // The script's arithmetic is in doubles: a count beyond any inbox is
  // clamped before it becomes a number Redis cannot read back.
  max_count = std::min<std::size_t>(max_count, std::size_t{1} << 30);
  max_bytes = std::min<std::size_t>(max_bytes, std::size_t{1} << 50);
  auto self = impl_;
  std::string text;
  redis::append_command(
      text, {"EVALSHA", self->fetch_script.sha, "2", codec::seq_key(user), codec::inbox_key(user),
             std::to_string(after), std::to_string(max_count), std::to_string(max_bytes)});
  auto replies = co_await self->call(std::move(text), 1);
  const auto& entries = replies[0];
  if (entries.is_error()) throw unavailable("Redis refused a fetch: " + entries.str);
  out.reserve(entries.elements.size());
  for (const auto& entry : entries.elements) {
    auto m = codec::decode_entry(entry.str, user);
    if (m && m->seq > after) out.push_back(std::move(*m));
  }
  co_return out;
}

namespace {

// The mark script's replies, {evicted, sender, entry...}: the STATUS
// entries it appended (already published).
void collect_statuses(const std::vector<reply>& replies, status_outcome& out) {
  for (const auto& r : replies) {
    if (r.is_error()) throw unavailable("Redis refused a cursor move or READ: " + r.str);
    if (r.type != reply::kind::array || r.elements.empty()) continue;
    out.evicted += as_u64(r.elements[0]);
    for (std::size_t i = 1; i + 1 < r.elements.size(); i += 2) {
      const auto owner = codec::parse_u64(r.elements[i].str);
      if (!owner) continue;
      if (auto m = codec::decode_entry(r.elements[i + 1].str, *owner)) out.statuses.push_back(*m);
    }
  }
}

}  // namespace

asio::awaitable<status_outcome> redis_backend::advance_cursors(std::span<const cursor_move> moves) {
  status_outcome out;
  if (moves.empty()) co_return out;
  auto self = impl_;
  auto& d = *self;
  // One move per (user, device), the furthest, at the time of the last.
  std::map<std::pair<user_id, std::string>, std::pair<seq_t, std::int64_t>> furthest;
  for (const auto& m : moves) {
    auto& [seq, ts] = furthest[{m.user, codec::device_member(m.device)}];
    seq = std::max(seq, m.seq);
    ts = std::max(ts, m.ts_ms);
  }
  // One script per move: the cursor only ever moves forward (ZADD GT),
  // whichever node moves it, and the STATUS entries it brings are appended
  // in the same script (PROTOCOL.md section 11). A user with no
  // notify-message pending costs a GET and a ZADD, as before a ZADD alone.
  const auto db = std::to_string(d.settings.db);
  const auto limit = std::to_string(d.settings.limits.inbox_limit);
  const auto retention_ms =
      std::to_string(std::max<std::int64_t>(1, ttl_ms(d.settings.limits.retention)));
  const auto forget_ms = std::to_string(device_forget_ms(d.settings.limits.device_ttl));
  std::string text;
  for (const auto& [key, move] : furthest) {
    redis::append_command(text, {"EVALSHA", d.mark_script.sha, "4", codec::cursor_key(key.first),
                                 codec::seq_key(key.first), codec::notify_key(key.first),
                                 codec::unread_key(key.first), key.second,
                                 std::to_string(move.first), std::to_string(move.second), "d",
                                 std::to_string(key.first), db, limit, retention_ms, forget_ms});
  }
  auto replies = co_await d.call(std::move(text), furthest.size());
  collect_statuses(replies, out);
  co_return out;
}

asio::awaitable<status_outcome> redis_backend::read(user_id user, seq_t seq, std::int64_t ts_ms) {
  status_outcome out;
  auto self = impl_;
  auto& d = *self;
  std::string text;
  redis::append_command(
      text, {"EVALSHA", d.mark_script.sha, "4", codec::cursor_key(user), codec::seq_key(user),
             codec::notify_key(user), codec::unread_key(user), "", std::to_string(seq),
             std::to_string(ts_ms), "r", std::to_string(user), std::to_string(d.settings.db),
             std::to_string(d.settings.limits.inbox_limit),
             std::to_string(std::max<std::int64_t>(1, ttl_ms(d.settings.limits.retention))),
             std::to_string(device_forget_ms(d.settings.limits.device_ttl))});
  auto replies = co_await d.call(std::move(text), 1);
  collect_statuses(replies, out);
  co_return out;
}

asio::awaitable<std::uint64_t> redis_backend::evict_expired(std::int64_t) {
  // Redis expires inboxes and dedup entries itself (TTLs), and the append
  // script trims expired messages at the head of the inbox it writes.
  co_return 0;
}

}  // namespace switchboard::store
