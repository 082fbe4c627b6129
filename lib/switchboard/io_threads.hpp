// The I/O threads (--threads): one io_context per thread, and every
// connection lives on one of them for its whole life.
//
// A session's coroutines then run on one thread without a strand: no strand
// queue, no lock and no cross-thread handoff per completion, which cost about
// a tenth of the CPU per relayed message (docs/performance.md). Work crosses
// threads only through the concurrent channels of the hub, the store and the
// session handles. Each context runs one shard of the hub (hub.hpp).
// Context 0, run by the thread that calls run(), also holds the listener,
// the memory store, the signals and the shutdown.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "switchboard/net.hpp"

namespace switchboard {

class io_threads {
 public:
  explicit io_threads(unsigned count);
  // Every handler still queued is destroyed while all contexts exist: a
  // coroutine frame on one thread may hold work on another's context.
  ~io_threads();

  io_threads(const io_threads&) = delete;
  io_threads& operator=(const io_threads&) = delete;

  asio::io_context& main() { return *contexts_.front(); }
  std::size_t size() const { return contexts_.size(); }
  // Context k, run by I/O thread k (0: main()).
  asio::io_context& at(std::size_t k) { return *contexts_.at(k); }

  // The context for the next connection, in turn. Only the listener calls
  // it, from context 0.
  asio::io_context& next();

  // Runs context 0 here and the others on threads of their own; returns once
  // stop() was called and every thread ended.
  void run();
  // Ends run() on every thread. Safe from any thread.
  void stop();

 private:
  // io_context with its shutdown (destroy every queued handler) callable.
  struct context : asio::io_context {
    context() : asio::io_context(1) {}  // one thread runs it
    using asio::io_context::shutdown;
  };
  using guard = asio::executor_work_guard<asio::io_context::executor_type>;

  std::vector<std::unique_ptr<context>> contexts_;
  std::vector<guard> guards_;  // keep a context with no work running until stop()
  std::size_t next_ = 0;
};

}  // namespace switchboard
