// The long-lived parts every connection uses, owned by the server and
// borrowed by each session for its whole life.
#pragma once

namespace boost::asio::ssl {
class context;
}

namespace switchboard {

struct config;
class metrics;
class hub;
class router;
namespace store {
class workers;
}

struct services {
  const config& cfg;
  metrics& stats;
  hub& registry;
  store::workers& store;  // one worker, or one per I/O thread (memory:)
  router& routes;
  boost::asio::ssl::context* tls = nullptr;  // with --tls-cert/--tls-key
};

}  // namespace switchboard
