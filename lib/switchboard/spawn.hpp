// The one completion handler for every detached coroutine (STYLE.md rule 7):
// an exception that escapes a coroutine is logged with the coroutine's name,
// never swallowed, never left to terminate the process.
#pragma once

#include <exception>
#include <string_view>

namespace switchboard {

class log_exception {
 public:
  explicit log_exception(std::string_view what) : what_(what) {}
  void operator()(std::exception_ptr e) const;

 private:
  std::string_view what_;  // a string literal naming the coroutine
};

}  // namespace switchboard
