#include "switchboard/io_threads.hpp"

#include <thread>

namespace switchboard {

io_threads::io_threads(unsigned count) {
  const unsigned n = count == 0 ? 1 : count;
  contexts_.reserve(n);
  guards_.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    contexts_.push_back(std::make_unique<context>());
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
