// Accepts TCP connections and runs, for each, one HTTP exchange: an answer
// and a close, or a WebSocket upgrade into a session (router.hpp decides).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "switchboard/io_threads.hpp"
#include "switchboard/net.hpp"
#include "switchboard/services.hpp"

namespace switchboard {

class transport;

// One connection, from its first byte: one HTTP exchange (an answer and a
// close) or a WebSocket upgrade and then the session (session.hpp). Runs on
// the connection's I/O thread; the listener spawns it for each accepted
// socket, fuzz_session for each in-memory connection (memory_link.hpp).
asio::awaitable<void> serve_connection(transport stream, services& s);

class listener {
 public:
  // Binds and listens at once, so a port in use fails here, before anything
  // is printed. Throws boost::system::system_error.
  // Accepts on the main I/O thread; each connection then runs on the next
  // I/O thread in turn.
  listener(io_threads& io, const asio::ip::tcp::endpoint& endpoint);

  asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  // The accept loop; ends when close() is called.
  asio::awaitable<void> run(services& s);
  void close();

 private:
  io_threads& io_;
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace switchboard
