#include "switchboard/server.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "switchboard/delivery.hpp"
#include "switchboard/hub.hpp"
#include "switchboard/jwt.hpp"
#include "switchboard/listener.hpp"
#include "switchboard/log.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/router.hpp"
#include "switchboard/spawn.hpp"
#include "switchboard/store/memory_backend.hpp"
#include "switchboard/store/redis_backend.hpp"
#include "switchboard/store/sqlite_backend.hpp"
#include "switchboard/store/store.hpp"

namespace switchboard {

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// How long a cluster node waits for Redis before it announces itself anyway.
constexpr std::chrono::seconds store_start_grace{3};

// How often retention and the dedup window are enforced.
constexpr std::chrono::seconds sweep_interval{1};

bool is_cluster(const config& cfg) {
  return cfg.store.starts_with("redis://");
}

// The content of a secret's file (`option` names it in the error), or
// empty when the option is off.
std::string load_secret(const std::optional<std::string>& file, std::string_view option) {
  if (!file) return {};
  try {
    return jwt::read_secret_file(*file);
  } catch (const std::exception& e) {
    throw startup_error("--" + std::string(option) + ": " + e.what());
  }
}

std::unique_ptr<store::async_backend> open_backend(const config& cfg, asio::any_io_executor main,
                                                   store::route_sink& routes, metrics& stats) {
  const auto limits = backend_limits_of(cfg);
  if (is_cluster(cfg)) {
    const auto location = parse_store_uri(cfg.store);
    store::redis_settings s;
    s.host = location->host;
    s.port = location->port;
    s.user = location->user;
    s.db = location->db;
    if (cfg.redis_password_file)
      s.password = load_secret(cfg.redis_password_file, "redis-password-file");
    s.node_id = cfg.node_id;
    s.limits = limits;
    s.max_sessions_per_user = cfg.max_sessions_per_user;
    s.session_lease = cfg.session_lease;
    return std::make_unique<store::redis_backend>(main, std::move(s), routes, stats);
  }
  if (cfg.store == "memory:")
    return std::make_unique<store::sync_adapter>(std::make_unique<store::memory_backend>(limits));
  if (cfg.store.starts_with("sqlite:")) {
    try {
      return std::make_unique<store::sync_adapter>(
          std::make_unique<store::sqlite_backend>(cfg.store.substr(7), cfg.sync, limits));
    } catch (const std::exception& e) {
      throw startup_error(e.what());
    }
  }
  throw startup_error("store " + cfg.store + " is not supported by this build");
}

asio::ip::tcp::endpoint listen_endpoint(const config& cfg) {
  if (cfg.listen_host == "localhost") return {asio::ip::address_v4::loopback(), cfg.listen_port};
  boost::system::error_code ec;
  auto address = asio::ip::make_address(cfg.listen_host, ec);
  if (ec) throw startup_error("--listen: bad address " + cfg.listen_host);
  return {address, cfg.listen_port};
}

// --tls-cert/--tls-key: TLS 1.2 and newer, the certificate chain and key
// read once at start (a file that cannot be used is exit code 1).
std::unique_ptr<asio::ssl::context> load_tls(const config& cfg) {
  if (!cfg.tls_cert || !cfg.tls_key) return nullptr;
  auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  tls->use_certificate_chain_file(*cfg.tls_cert, ec);
  if (ec) throw startup_error("--tls-cert " + *cfg.tls_cert + ": " + ec.message());
  tls->use_private_key_file(*cfg.tls_key, asio::ssl::context::pem, ec);
  if (ec) throw startup_error("--tls-key " + *cfg.tls_key + ": " + ec.message());
  if (SSL_CTX_check_private_key(tls->native_handle()) != 1)
    throw startup_error("--tls-key " + *cfg.tls_key + ": does not match the certificate");
  return tls;
}

// The services of every server in this process (one in the binary; some
// tests run several), for a debugger: `sb hub` and `sb store` start here
// (tools/gdb/switchboard.py), since nothing of a server is on any stack
// while its threads wait in epoll_wait. Touched when a server starts or ends.
std::mutex all_servers_mutex;
std::vector<const services*> all_servers;

// Lists a server's services for as long as it lives.
class listed_server {
 public:
  explicit listed_server(const services& s) : services_(&s) {
    std::lock_guard lock(all_servers_mutex);
    all_servers.push_back(services_);
  }
  ~listed_server() {
    std::lock_guard lock(all_servers_mutex);
    std::erase(all_servers, services_);
  }
  listed_server(const listed_server&) = delete;
  listed_server& operator=(const listed_server&) = delete;

 private:
  const services* services_;
};

}  // namespace

store::backend_limits backend_limits_of(const config& cfg) {
  store::backend_limits limits;
  limits.retention = cfg.retention;
  limits.inbox_limit = cfg.inbox_limit;
  limits.dedup_window = cfg.dedup_window;
  limits.inbox_bytes = cfg.inbox_bytes;
  limits.memory_store_bytes = cfg.memory_store_bytes;
  limits.device_ttl = cfg.device_ttl;
  limits.max_group_members = cfg.max_group_members;
  limits.max_devices_per_user = cfg.max_devices_per_user;
  return limits;
}

// A replay page holds a quarter of --send-queue-bytes of content (but always
// one message), so that a page and the live frames behind it fit the
// session's queue together; --store-queue-bytes bounds the SENDs waiting
// for the store.
store::worker_limits worker_limits_of(const config& cfg) {
  store::worker_limits limits;
  limits.replay_page_bytes = std::max<std::size_t>(1, cfg.send_queue_bytes / 4);
  limits.queue_bytes = cfg.store_queue_bytes;
  return limits;
}

// Every I/O thread's executor, thread 0's first.
std::vector<asio::any_io_executor> executors_of(io_threads& io) {
  std::vector<asio::any_io_executor> executors;
  for (std::size_t k = 0; k < io.size(); ++k)
    executors.push_back(io.at(k).get_executor());
  return executors;
}

// The store's workers. A memory store with more than one I/O thread is one
// partition and worker per thread, each on the thread of the hub's shard of
// the same users (docs/architecture.md, "Step 2"); SQLite keeps one worker
// on a thread of its own, and Redis one on the main I/O thread, with the
// hub sharded alone.
store::workers open_store(const config& cfg, io_threads& io, delivery& outcomes, metrics& stats) {
  if (cfg.store == "memory:" && io.size() > 1)
    return store::workers(backend_limits_of(cfg), outcomes, stats, sweep_interval,
                          worker_limits_of(cfg), executors_of(io));
  // The memory and Redis stores never block: they run on the main I/O
  // thread, with the hub.
  const bool on_main = cfg.store == "memory:" || is_cluster(cfg);
  return store::workers(std::make_unique<store::worker>(
      open_backend(cfg, io.main().get_executor(), outcomes, stats), outcomes, stats, sweep_interval,
      worker_limits_of(cfg),
      on_main ? asio::any_io_executor(io.main().get_executor()) : asio::any_io_executor{}));
}

struct server::parts {
  parts(config& cfg, io_threads& io)
      : tls(load_tls(cfg)),
        routes(cfg, stats, load_secret(cfg.jwt_secret_file, "jwt-secret-file"),
               load_secret(cfg.api_key_file, "api-key-file")),
        // A cluster counts sessions per user across nodes and tells the
        // hub which to close.
        // One shard of the hub per I/O thread (docs/architecture.md, "Shards").
        registry(executors_of(io), is_cluster(cfg) ? 0 : cfg.max_sessions_per_user, stats),
        outcomes(registry, stats),
        store(open_store(cfg, io, outcomes, stats)),
        acceptor(bind(io, cfg)),
        signals(io.main(), SIGINT, SIGTERM),
        shared{cfg, stats, registry, store, routes, tls.get()},
        listed(shared) {}

  static listener bind(io_threads& io, const config& cfg) {
    const auto endpoint = listen_endpoint(cfg);
    try {
      return listener(io, endpoint);
    } catch (const boost::system::system_error& e) {
      throw startup_error("cannot listen on " + cfg.listen_host + ":" +
                          std::to_string(cfg.listen_port) + ": " + e.code().message());
    }
  }

  std::unique_ptr<asio::ssl::context> tls;
  metrics stats;
  router routes;
  hub registry;
  delivery outcomes;
  store::workers store;
  listener acceptor;
  asio::signal_set signals;
  services shared;
  listed_server listed;
};

server::server(config cfg) : config_(std::move(cfg)), io_(config_.threads) {
  parts_ = std::make_unique<parts>(config_, io_);
}

server::~server() = default;

void server::stop() {
  asio::post(io_.main(), [this] { parts_->signals.cancel(); });
}

asio::ip::tcp::endpoint server::endpoint() const {
  return parts_->acceptor.local_endpoint();
}

void server::announce() {
  const auto local = endpoint();
  const auto address = local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                               : local.address().to_string();
  std::printf("listening on %s:%u\n", address.c_str(), static_cast<unsigned>(local.port()));
  std::fflush(stdout);
  SB_LOG(info) << "listening on " << address << ":" << local.port() << ", store " << config_.store
               << ", " << config_.threads << " I/O threads, node " << config_.node_id;
}

int server::run() {
  auto& p = *parts_;
  set_log_level(config_.level);
  set_log_format(config_.format);
  // Several nodes' logs are read together: each line says whose it is.
  if (is_cluster(config_)) set_log_node(config_.node_id);
  if (!config_.jwt_secret_file)
    SB_LOG(warn) << "no --jwt-secret-file: the server is open, any client may connect as any user";
  else
    SB_LOG(info) << "JWT authentication on (HS256, " << jwt::leeway_seconds << " s leeway)";

  p.store.start();
  asio::co_spawn(p.registry.get_executor(), p.registry.run(), log_exception("hub"));
  asio::co_spawn(io_.main(), p.acceptor.run(p.shared), log_exception("listener"));
  // The shutdown coroutine and the hub's "drained" notice meet on the main
  // thread: the notice can come before the coroutine waits.
  auto main_thread = io_.main().get_executor();
  asio::co_spawn(
      main_thread,
      [&]() -> asio::awaitable<void> {
        // stop() cancels the wait: the same drain as for a signal.
        auto [ec, signal] = co_await p.signals.async_wait(use_tuple);
        SB_LOG(info) << (ec ? std::string("stop requested") : "signal " + std::to_string(signal))
                     << ": draining for up to " << config_.drain_timeout.count() << " s";
        p.routes.start_draining();
        // The deadline ends early once the hub reports every session gone,
        // which may happen before the wait starts: hence the flag. Shared,
        // because the hub's notice may also come after this coroutine ended.
        struct drain_state {
          asio::steady_timer deadline;
          bool drained = false;
        };
        auto state = std::make_shared<drain_state>(
            drain_state{asio::steady_timer(main_thread, config_.drain_timeout)});
        hub_message drain = hub_event::drain{[state, main_thread] {
          asio::post(main_thread, [state] {
            state->drained = true;
            state->deadline.cancel();
          });
        }};
        co_await p.registry.send(std::move(drain));
        if (!state->drained) co_await state->deadline.async_wait(use_tuple);
        // A cluster removes this node's sessions at once rather than when
        // their leases lapse: the store hears of every session that ended
        // before the listener closes (within what is left of the deadline).
        state->drained = false;
        store::store_request barrier = store::request::barrier{[state, main_thread] {
          asio::post(main_thread, [state] {
            state->drained = true;
            state->deadline.cancel();
          });
        }};
        co_await p.store.submit(std::move(barrier));
        if (!state->drained) co_await state->deadline.async_wait(use_tuple);
        p.acceptor.close();
        p.registry.close();
        io_.stop();
      },
      log_exception("shutdown"));

  // A cluster node announces itself once Redis answered, so that a client
  // that connects as soon as it reads the line is not refused; a Redis that
  // does not answer within the deadline does not hold the start (the node
  // runs on, PROTOCOL.md section 7).
  asio::co_spawn(
      main_thread,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer pause(main_thread);
        const auto give_up = std::chrono::steady_clock::now() + store_start_grace;
        while (!p.store.backend().available() && std::chrono::steady_clock::now() < give_up) {
          pause.expires_after(std::chrono::milliseconds(10));
          co_await pause.async_wait(use_tuple);
        }
        announce();
      },
      log_exception("announce"));

  io_.run();
  io_.run();

  // The I/O threads are gone; the store finishes what it was given and closes.
  p.store.stop();
  SB_LOG(info) << "stopped";
  return exit_ok;
}

}  // namespace switchboard
