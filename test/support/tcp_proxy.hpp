// A TCP proxy on a loopback port of its own, run by a thread of its own,
// between a node and its Redis: a test sets what the wire does (pass
// everything, or swallow one direction) and resets every connection at
// once, to make the faults a network makes (a reply lost after Redis ran the
// command, a request lost before it did) happen when the test wants.
#pragma once

#include <cstdint>
#include <memory>

namespace switchboard::test {

class tcp_proxy {
 public:
  enum class mode {
    pass,              // both directions
    swallow_replies,   // what the upstream sends is dropped
    swallow_requests,  // what the client sends is dropped
  };

  explicit tcp_proxy(std::uint16_t upstream_port);  // 127.0.0.1:upstream_port
  ~tcp_proxy();
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  std::uint16_t port() const;
  void set_mode(mode m);  // for bytes read from now on
  // Closes every open connection with a reset (both sides); new ones are
  // accepted as before.
  void reset_all();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace switchboard::test
