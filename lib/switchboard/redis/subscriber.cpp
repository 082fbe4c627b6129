#include "switchboard/redis/subscriber.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>

#include "switchboard/log.hpp"
#include "switchboard/redis/link.hpp"
#include "switchboard/redis/retry.hpp"
#include "switchboard/spawn.hpp"

namespace switchboard::redis {

namespace {
using signal_channel = asio::experimental::channel<void(boost::system::error_code)>;
using clock = std::chrono::steady_clock;

// A pub/sub push: ["message", channel, payload], ["subscribe", channel, n]...
bool is_push(const reply& r, std::string_view kind, std::size_t size) {
  return r.type == reply::kind::array && r.elements.size() == size &&
         r.elements[0].type == reply::kind::string && r.elements[0].str == kind;
}
}  // namespace

// The state the background coroutines share with the subscriber object (see
// connection.cpp for why a shared_ptr and the `owner_` pointer).
struct subscriber::impl {
  impl(asio::any_io_executor ex, endpoint ep, options opt, counters& c)
      : executor_(ex),
        endpoint_(std::move(ep)),
        options_(opt),
        counters_(c),
        link_(ex),
        backoff_timer_(ex),
        wake_writer_(ex, 1),
        backoff_(opt.backoff_min, opt.backoff_max),
        log_("redis subscriber connection to " + detail::describe(endpoint_)) {}

  // One channel of the set.
  struct entry {
    std::size_t count = 0;   // subscribe() calls not yet matched by unsubscribe()
    bool confirmed = false;  // by Redis, on the current connection
    // subscribe() calls waiting for the confirmation: an empty error code
    // once it came, an error when the connection failed first.
    std::vector<std::shared_ptr<signal_channel>> waiters;
  };

  static asio::awaitable<void> run(std::shared_ptr<impl> self);
  // Connect, AUTH, SUBSCRIBE the whole set, wait for every confirmation.
  asio::awaitable<void> handshake();
  // Reader, writer and watchdog of an up connection, until one of them ends;
  // returns why.
  asio::awaitable<std::string> session();
  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> watchdog();
  static asio::awaitable<void> subscribe(std::shared_ptr<impl> self, std::string channel);
  void release(const std::string& channel);

  // Takes one reply off the connection: confirmations, messages, pongs.
  // Returns the channel a "subscribe" confirmation was for, if it was one.
  std::optional<std::string> handle(reply r);
  void enqueue(std::initializer_list<std::string_view> command);
  void end_session(const std::string& why);  // the first reason wins
  void fail_waiters(boost::system::error_code ec);
  void set_up();
  void set_down(const std::string& why);
  void stop();

  asio::any_io_executor executor_;
  endpoint endpoint_;
  options options_;
  counters& counters_;
  detail::link link_;
  asio::steady_timer backoff_timer_;
  std::map<std::string, entry, std::less<>> channels_;  // the set
  // Commands for the writer. Bounded by what fits in a deadline: the writer
  // sends it all in one write, and a write that does not finish makes the
  // watchdog close the connection, which clears this.
  std::string out_;
  std::string writing_;         // what the writer is sending now (kept for its capacity)
  signal_channel wake_writer_;  // capacity 1: "out_ is not empty", sent at most once
  backoff backoff_;
  failure_log log_;
  subscriber* owner_ = nullptr;  // for the callbacks; null once stopped
  bool started_ = false;
  bool stopped_ = false;
  bool up_ = false;
  bool ever_up_ = false;
  bool open_ = false;  // a connection is open (handshaking or up): unsubscribe can be sent
  std::string down_reason_ = "not connected yet";
  std::string end_reason_;  // why the current session ended
  // When the oldest PING still without any reply after it was sent.
  std::optional<clock::time_point> unanswered_since_;
};

asio::awaitable<void> subscriber::impl::run(std::shared_ptr<impl> self) {
  while (!self->stopped_) {
    std::string failure;
    try {
      co_await detail::within(self->options_.deadline, "connect and subscribe", self->handshake());
    } catch (const std::exception& e) {
      failure = detail::describe(e);
    }
    if (self->stopped_) co_return;
    if (failure.empty()) {
      self->set_up();
      // on_connected may have stopped us.
      if (self->stopped_) co_return;
      auto why = co_await self->session();
      if (self->stopped_) co_return;
      self->set_down(why);
    } else {
      self->link_.close();
      self->open_ = false;
      self->fail_waiters(asio::error::connection_aborted);
      self->log_.failed(failure);
    }
    self->backoff_timer_.expires_after(self->backoff_.next());
    co_await self->backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> subscriber::impl::handshake() {
  co_await link_.connect(endpoint_);
  out_.clear();
  wake_writer_.reset();
  unanswered_since_.reset();
  end_reason_.clear();
  open_ = true;

  std::string hello;
  if (endpoint_.password || endpoint_.user) {
    std::vector<std::string_view> auth{"AUTH"};
    if (endpoint_.user) auth.push_back(*endpoint_.user);
    auth.push_back(endpoint_.password ? std::string_view(*endpoint_.password) : "");
    append_command(hello, auth);
  }
  std::set<std::string, std::less<>> unconfirmed;
  std::vector<std::string_view> subscribe{"SUBSCRIBE"};
  for (auto& [name, e] : channels_) {
    e.confirmed = false;
    unconfirmed.insert(name);
    subscribe.push_back(name);
  }
  // Without channels a PING: only a reply proves Redis is there.
  if (unconfirmed.empty())
    append_command(hello, {"PING"});
  else
    append_command(hello, subscribe);
  co_await link_.write(hello);

  if (endpoint_.password || endpoint_.user) {
    auto r = co_await link_.read();
    if (r.is_error()) throw unavailable("AUTH failed: " + r.str);
  }
  if (unconfirmed.empty()) {
    auto r = co_await link_.read();
    if (r.is_error()) throw unavailable("PING failed: " + r.str);
    co_return;
  }
  while (!unconfirmed.empty()) {
    if (auto confirmed = handle(co_await link_.read())) unconfirmed.erase(*confirmed);
  }
}

std::optional<std::string> subscriber::impl::handle(reply r) {
  unanswered_since_.reset();  // anything at all shows Redis is alive
  if (is_push(r, "message", 3)) {
    counters_.messages.fetch_add(1, std::memory_order_relaxed);
    // A channel unsubscribed a moment ago may still have messages in flight.
    if (channels_.contains(r.elements[1].str) && owner_ && owner_->on_message)
      owner_->on_message(r.elements[1].str, r.elements[2].str);
    return std::nullopt;
  }
  if (is_push(r, "subscribe", 3)) {
    auto& name = r.elements[1].str;
    if (auto it = channels_.find(name); it != channels_.end()) {
      it->second.confirmed = true;
      for (auto& w : std::exchange(it->second.waiters, {}))
        w->try_send(boost::system::error_code{});
    }
    return std::move(name);
  }
  if (r.is_error()) throw protocol_error("redis: error on the subscriber connection: " + r.str);
  // "unsubscribe" confirmations, pongs (["pong", ""] in subscribe mode, +PONG
  // outside it): nothing to do beyond the liveness above.
  return std::nullopt;
}

asio::awaitable<std::string> subscriber::impl::session() {
  using namespace asio::experimental::awaitable_operators;
  // Each ends by returning (never throwing: `||` waits for the first branch
  // that succeeds), after putting its reason in end_reason_.
  co_await (reader() || writer() || watchdog());
  co_return end_reason_.empty() ? std::string("session ended") : end_reason_;
}

asio::awaitable<void> subscriber::impl::reader() {
  try {
    for (;;)
      handle(co_await link_.read());
  } catch (const std::exception& e) {
    end_session(detail::describe(e));
  }
}

asio::awaitable<void> subscriber::impl::writer() {
  try {
    for (;;) {
      if (out_.empty()) {
        auto [ec] = co_await wake_writer_.async_receive(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return end_session("writer cancelled");
        continue;
      }
      writing_.clear();
      std::swap(writing_, out_);
      co_await link_.write(writing_);
    }
  } catch (const std::exception& e) {
    end_session(detail::describe(e));
  }
}

asio::awaitable<void> subscriber::impl::watchdog() {
  const auto deadline = options_.deadline;
  const auto period = std::max(deadline / 3, std::chrono::milliseconds(1));
  asio::steady_timer timer(executor_);
  for (;;) {
    timer.expires_after(period);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return end_session("watchdog cancelled");
    const auto now = clock::now();
    if (unanswered_since_ && now - *unanswered_since_ >= deadline)
      co_return end_session("no answer to PING within " + std::to_string(deadline.count()) + " ms");
    if (!unanswered_since_) unanswered_since_ = now;
    enqueue({"PING"});
  }
}

void subscriber::impl::end_session(const std::string& why) {
  if (end_reason_.empty()) end_reason_ = why;
}

void subscriber::impl::enqueue(std::initializer_list<std::string_view> command) {
  append_command(out_, command);
  wake_writer_.try_send(boost::system::error_code{});  // fails when already woken: fine
}

asio::awaitable<void> subscriber::impl::subscribe(std::shared_ptr<impl> self, std::string channel) {
  if (!self->up_) throw unavailable("redis subscriber: " + self->down_reason_);
  auto [it, created] = self->channels_.try_emplace(channel);
  auto& e = it->second;
  ++e.count;
  if (e.confirmed) co_return;
  // Unconfirmed while up: either new, or a SUBSCRIBE sent by an earlier call
  // is on its way.
  if (created) self->enqueue({"SUBSCRIBE", channel});
  auto waiter = std::make_shared<signal_channel>(self->executor_, 1);
  e.waiters.push_back(waiter);

  std::string failure;
  try {
    auto [ec] = co_await detail::within(self->options_.deadline, "SUBSCRIBE",
                                        waiter->async_receive(asio::as_tuple(asio::use_awaitable)));
    if (ec) failure = self->stopped_ ? "stopped" : self->down_reason_;
  } catch (const unavailable& timeout) {
    failure = timeout.what();
    // No confirmation within the deadline: Redis is hung, as the watchdog
    // would conclude a little later.
    if (auto found = self->channels_.find(channel); found != self->channels_.end())
      std::erase(found->second.waiters, waiter);
    if (self->up_) self->set_down(failure);
  }
  if (failure.empty()) co_return;
  self->release(channel);
  throw unavailable("redis subscriber: " + failure);
}

void subscriber::impl::release(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  if (--it->second.count > 0) return;
  // Each waiter holds a count of its own, so none is left here.
  channels_.erase(it);
  if (open_) enqueue({"UNSUBSCRIBE", channel});
}

void subscriber::impl::fail_waiters(boost::system::error_code ec) {
  for (auto& [name, e] : channels_) {
    e.confirmed = false;
    for (auto& w : std::exchange(e.waiters, {}))
      w->try_send(ec);
  }
}

void subscriber::impl::set_up() {
  up_ = true;
  backoff_.reset();
  if (ever_up_) counters_.reconnects.fetch_add(1, std::memory_order_relaxed);
  ever_up_ = true;
  counters_.subscriber_up.store(true, std::memory_order_relaxed);
  log_.up();
  if (owner_ && owner_->on_state) owner_->on_state(true);
  if (owner_ && owner_->on_connected) owner_->on_connected();
}

void subscriber::impl::set_down(const std::string& why) {
  link_.close();
  open_ = false;
  const bool was_up = std::exchange(up_, false);
  if (was_up) down_reason_ = why;
  fail_waiters(asio::error::connection_aborted);
  if (!was_up) return;
  counters_.subscriber_up.store(false, std::memory_order_relaxed);
  log_.down(why);
  if (owner_ && owner_->on_state) owner_->on_state(false);
}

void subscriber::impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  owner_ = nullptr;
  down_reason_ = "stopped";
  if (up_) {
    up_ = false;
    counters_.subscriber_up.store(false, std::memory_order_relaxed);
    SB_LOG(info) << "redis subscriber connection to " << detail::describe(endpoint_) << ": stopped";
  }
  link_.close();
  open_ = false;
  backoff_timer_.cancel();
  fail_waiters(asio::error::operation_aborted);
}

subscriber::subscriber(asio::any_io_executor ex, endpoint ep, options opt, counters& c)
    : impl_(std::make_shared<impl>(ex, std::move(ep), opt, c)) {
  impl_->owner_ = this;
}

subscriber::~subscriber() {
  stop();
}

void subscriber::start() {
  // Once: a second run loop would race the first for the socket.
  if (impl_->started_ || impl_->stopped_) return;
  impl_->started_ = true;
  asio::co_spawn(impl_->executor_, impl::run(impl_), log_exception("redis subscriber"));
}

void subscriber::stop() {
  impl_->stop();
}

bool subscriber::connected() const {
  return impl_->up_;
}

asio::awaitable<void> subscriber::subscribe(std::string channel) {
  return impl::subscribe(impl_, std::move(channel));
}

void subscriber::unsubscribe(const std::string& channel) {
  impl_->release(channel);
}

}  // namespace switchboard::redis
