// A Switchboard in memory, for tests and fuzzing: the parts server.cpp
// wires (router, hub, store worker over a memory store) on one io_context
// that the caller runs, and connections over memory_link.hpp instead of
// sockets. What happens is then one deterministic sequence: a race between
// a session's reader and writer can be set up step by step and replayed.
// Header-only: fuzz_session (test/fuzz) uses it without the test support
// library.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "support/client_frames.hpp"
#include "switchboard/config.hpp"
#include "switchboard/delivery.hpp"
#include "switchboard/hub.hpp"
#include "switchboard/listener.hpp"
#include "switchboard/memory_link.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/router.hpp"
#include "switchboard/server.hpp"
#include "switchboard/services.hpp"
#include "switchboard/store/async_backend.hpp"
#include "switchboard/store/memory_backend.hpp"
#include "switchboard/store/store.hpp"
#include "switchboard/transport.hpp"

namespace switchboard::test {

class memory_server {
 public:
  explicit memory_server(config c)
      : cfg(std::move(c)),
        routes(cfg, stats),
        registry(context.get_executor(), cfg.max_sessions_per_user, stats),
        outcomes(registry, stats),
        store(std::make_unique<store::worker>(
            std::make_unique<store::sync_adapter>(
                std::make_unique<store::memory_backend>(backend_limits_of(cfg))),
            outcomes, stats, std::chrono::seconds(1), worker_limits_of(cfg),
            context.get_executor())),
        shared{cfg, stats, registry, store, routes, nullptr} {
    store.start();
    boost::asio::co_spawn(context, registry.run(), boost::asio::detached);
  }
  ~memory_server() {
    registry.close();
    context.poll();
    context.stop();
  }
  memory_server(const memory_server&) = delete;
  memory_server& operator=(const memory_server&) = delete;

  // A new connection whose "kernel" takes `window` bytes the client has not
  // read; `held`, when given, receives the transport's count of bytes not
  // yet taken (transport::held()).
  std::shared_ptr<memory_link> connect(
      std::size_t window, std::shared_ptr<const std::atomic<std::size_t>>* held = nullptr) {
    auto link = std::make_shared<memory_link>(context.get_executor(), window);
    transport io(link);
    if (held) *held = io.held();
    boost::asio::co_spawn(context, serve_connection(std::move(io), shared), boost::asio::detached);
    return link;
  }

  // Runs the handlers that are ready (at most `limit`), calling `after_each`
  // after each one.
  template <class F>
  void settle(F&& after_each, int limit = 10000) {
    for (int i = 0; i < limit && context.poll_one() != 0; ++i)
      after_each();
  }
  void settle() {
    settle([] {});
  }

  boost::asio::io_context context{1};  // first: destroyed last, its handlers may hold the rest
  const config cfg;
  metrics stats;
  router routes;
  hub registry;
  delivery outcomes;
  store::workers store;
  services shared;
};

}  // namespace switchboard::test
