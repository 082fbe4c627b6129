// The long-lived parts every connection uses, owned by the server and
// borrowed by each session for its whole life.
#pragma once

namespace switchboard {

struct config;
class metrics;
class hub;
class router;
namespace store {
class worker;
}

struct services {
  const config& cfg;
  metrics& stats;
  hub& registry;
  store::worker& store;
  router& routes;
};

}  // namespace switchboard
