#include "switchboard/redis/connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>

#include "switchboard/log.hpp"
#include "switchboard/redis/link.hpp"
#include "switchboard/redis/retry.hpp"
#include "switchboard/spawn.hpp"

namespace switchboard::redis {

namespace {
using done_channel = asio::experimental::channel<void(boost::system::error_code)>;
}  // namespace

// The state the background coroutines share with the connection object. The
// coroutines are static members taking a shared_ptr, so that the state lives
// as long as the last of them; `owner_` is cleared by stop(), after which
// nothing here reaches the connection object.
struct connection::impl {
  impl(asio::any_io_executor ex, endpoint ep, options opt, counters& c,
       std::vector<std::vector<std::string>> setup)
      : executor_(ex),
        endpoint_(std::move(ep)),
        options_(opt),
        counters_(c),
        link_(ex),
        backoff_timer_(ex),
        done_(ex, 1),
        backoff_(opt.backoff_min, opt.backoff_max),
        log_("redis command connection to " + detail::describe(endpoint_)) {
    if (endpoint_.password || endpoint_.user) {
      std::vector<std::string_view> auth{"AUTH"};
      if (endpoint_.user) auth.push_back(*endpoint_.user);
      auth.push_back(endpoint_.password ? std::string_view(*endpoint_.password) : "");
      append_command(handshake_, auth);
      handshake_names_.push_back("AUTH");
    }
    if (endpoint_.db != 0) {
      const auto db = std::to_string(endpoint_.db);
      append_command(handshake_, {"SELECT", db});
      handshake_names_.push_back("SELECT " + db);
    }
    for (const auto& command : setup) {
      append_command(handshake_, command);
      handshake_names_.push_back(command.empty() ? "" : command.front());
    }
    // The kernel accepts connections for a hung (SIGSTOPped) Redis: only a
    // reply proves it is there, so a handshake always waits for one.
    if (handshake_names_.empty()) {
      append_command(handshake_, {"PING"});
      handshake_names_.push_back("PING");
    }
  }

  // Connects and handshakes, over and over, until stopped.
  static asio::awaitable<void> run(std::shared_ptr<impl> self);
  // Connect, write the handshake, check every reply.
  asio::awaitable<void> handshake();
  // Hands every reply to the pending exec until the connection fails;
  // returns why it did.
  asio::awaitable<std::string> read_replies();
  static asio::awaitable<std::vector<reply>> exec(std::shared_ptr<impl> self, std::string commands,
                                                  std::size_t count);
  asio::awaitable<boost::system::error_code> exchange(const std::string& commands);

  void set_up();
  void set_down(const std::string& why);
  void stop();

  asio::any_io_executor executor_;
  endpoint endpoint_;
  options options_;
  counters& counters_;
  std::string handshake_;                     // encoded AUTH, SELECT, setup
  std::vector<std::string> handshake_names_;  // for log lines; never the password
  detail::link link_;
  asio::steady_timer backoff_timer_;
  // Completes the pending exec: an empty error code once its last reply is
  // in, an error when the connection failed first. Capacity 1: at most one
  // exec waits, and a value sent while it is still writing stays here until
  // it receives; reset() by the next exec.
  done_channel done_;
  backoff backoff_;
  failure_log log_;
  connection* owner_ = nullptr;  // for on_state; null once stopped
  bool started_ = false;
  bool stopped_ = false;
  bool up_ = false;
  bool ever_up_ = false;  // a later successful connect counts as a reconnect
  std::string down_reason_ = "not connected yet";

  // The exec being served: how many replies it waits for and those read so far.
  struct pending {
    std::size_t expected;
    std::vector<reply> replies;
  };
  std::optional<pending> pending_;
  bool busy_ = false;  // an exec is running (checks that callers serialise)
};

asio::awaitable<void> connection::impl::run(std::shared_ptr<impl> self) {
  while (!self->stopped_) {
    std::string failure;
    try {
      co_await detail::within(self->options_.deadline, "connect and handshake", self->handshake());
    } catch (const std::exception& e) {
      failure = detail::describe(e);
    }
    if (self->stopped_) co_return;
    if (failure.empty()) {
      self->set_up();
      if (self->stopped_) co_return;  // on_state may have stopped us
      auto why = co_await self->read_replies();
      if (self->stopped_) co_return;
      self->set_down(why);
    } else {
      self->link_.close();
      self->log_.failed(failure);
    }
    self->backoff_timer_.expires_after(self->backoff_.next());
    co_await self->backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> connection::impl::handshake() {
  co_await link_.connect(endpoint_);
  co_await link_.write(handshake_);
  for (const auto& name : handshake_names_) {
    auto r = co_await link_.read();
    if (r.is_error()) throw unavailable(name + " failed: " + r.str);
  }
}

asio::awaitable<std::string> connection::impl::read_replies() {
  try {
    for (;;) {
      auto r = co_await link_.read();
      if (!pending_ || pending_->replies.size() == pending_->expected)
        throw protocol_error("redis: a reply that no command asked for");
      pending_->replies.push_back(std::move(r));
      if (pending_->replies.size() == pending_->expected)
        done_.try_send(boost::system::error_code{});
    }
  } catch (const std::exception& e) {
    co_return detail::describe(e);
  }
}

asio::awaitable<boost::system::error_code> connection::impl::exchange(const std::string& commands) {
  co_await link_.write(commands);
  auto [ec] = co_await done_.async_receive(asio::as_tuple(asio::use_awaitable));
  co_return ec;
}

asio::awaitable<std::vector<reply>> connection::impl::exec(std::shared_ptr<impl> self,
                                                           std::string commands,
                                                           std::size_t count) {
  if (!self->up_) throw unavailable("redis: " + self->down_reason_);
  if (self->busy_) throw std::logic_error("redis: exec while another exec is running");
  if (count == 0) co_return std::vector<reply>{};
  self->busy_ = true;
  self->done_.reset();
  self->pending_.emplace();
  self->pending_->expected = count;
  self->pending_->replies.reserve(count);

  std::string failure;
  try {
    const auto ec =
        co_await detail::within(self->options_.deadline, "redis command", self->exchange(commands));
    if (ec) failure = self->down_reason_;
  } catch (const std::exception& e) {
    failure = detail::describe(e);
  }
  auto replies = std::move(self->pending_->replies);
  self->pending_.reset();
  self->busy_ = false;
  if (self->stopped_) throw indeterminate("redis: connection stopped");
  if (!failure.empty()) {
    // Whatever Redis still sends for this call must never reach the next one.
    self->set_down(failure);
    throw indeterminate("redis: " + failure);
  }
  self->counters_.round_trips.fetch_add(1, std::memory_order_relaxed);
  co_return replies;
}

void connection::impl::set_up() {
  up_ = true;
  backoff_.reset();
  if (ever_up_) counters_.reconnects.fetch_add(1, std::memory_order_relaxed);
  ever_up_ = true;
  counters_.command_up.store(true, std::memory_order_relaxed);
  log_.up();
  if (owner_ && owner_->on_state) owner_->on_state(true);
}

void connection::impl::set_down(const std::string& why) {
  link_.close();
  const bool was_up = std::exchange(up_, false);
  if (was_up) down_reason_ = why;
  // The pending exec, if any, reads down_reason_ when it resumes.
  if (pending_) done_.try_send(asio::error::connection_aborted);
  if (!was_up) return;
  counters_.command_up.store(false, std::memory_order_relaxed);
  log_.down(why);
  if (owner_ && owner_->on_state) owner_->on_state(false);
}

void connection::impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  owner_ = nullptr;
  down_reason_ = "connection stopped";
  if (up_) {
    up_ = false;
    counters_.command_up.store(false, std::memory_order_relaxed);
    SB_LOG(info) << "redis command connection to " << detail::describe(endpoint_) << ": stopped";
  }
  link_.close();
  backoff_timer_.cancel();
  if (pending_) done_.try_send(asio::error::operation_aborted);
}

connection::connection(asio::any_io_executor ex, endpoint ep, options opt, counters& c,
                       std::vector<std::vector<std::string>> setup)
    : impl_(std::make_shared<impl>(ex, std::move(ep), opt, c, std::move(setup))) {
  impl_->owner_ = this;
}

connection::~connection() {
  stop();
}

void connection::start() {
  // Once: a second run loop would race the first for the socket.
  if (impl_->started_ || impl_->stopped_) return;
  impl_->started_ = true;
  asio::co_spawn(impl_->executor_, impl::run(impl_), log_exception("redis command connection"));
}

void connection::stop() {
  impl_->stop();
}

bool connection::connected() const {
  return impl_->up_;
}

asio::awaitable<std::vector<reply>> connection::exec(std::string commands, std::size_t count) {
  return impl::exec(impl_, std::move(commands), count);
}

}  // namespace switchboard::redis
