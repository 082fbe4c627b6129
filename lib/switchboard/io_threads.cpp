#include "switchboard/io_threads.hpp"

#include <string>
#include <thread>

#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#include <boost/asio/detail/io_uring_service.hpp>
#include <boost/system/system_error.hpp>

#include "switchboard/server.hpp"  // startup_error
#endif

namespace switchboard {

io_threads::io_threads(unsigned count) {
  const unsigned n = count == 0 ? 1 : count;
  contexts_.reserve(n);
  guards_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<context>());
#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
    // Built with SWITCHBOARD_IO_URING: every io_context is an io_uring
    // ring, and there is no epoll to fall back on. A kernel or a container
    // that refuses io_uring (kernel.io_uring_disabled, a seccomp profile
    // such as Docker's default) must get a sentence, not a failure of the
    // first socket (Asio creates the ring with the first I/O object).
    try {
      asio::use_service<asio::detail::io_uring_service>(*contexts_.back());
    } catch (const boost::system::system_error& e) {
      throw startup_error(
          std::string("this build runs its I/O on io_uring (SWITCHBOARD_IO_URING) and the "
                      "system refused it (") +
          e.what() +
          "): allow io_uring (sysctl kernel.io_uring_disabled=0, or the container's seccomp "
          "profile), or use a build configured without SWITCHBOARD_IO_URING (epoll)");
    }
#endif
    guards_.push_back(asio::make_work_guard(*contexts_.back()));
  }
}

io_threads::~io_threads() {
  for (auto& c : contexts_)
    c->shutdown();
}

asio::io_context& io_threads::next() {
  auto& c = *contexts_[next_];
  next_ = (next_ + 1) % contexts_.size();
  return c;
}

void io_threads::run() {
  std::vector<std::thread> threads;
  threads.reserve(contexts_.size() - 1);
  for (std::size_t i = 1; i < contexts_.size(); ++i)
    threads.emplace_back([c = contexts_[i].get()] { c->run(); });
  contexts_.front()->run();
  for (auto& t : threads)
    t.join();
}

void io_threads::stop() {
  for (auto& c : contexts_)
    c->stop();
}

}  // namespace switchboard
