#include "switchboard/spawn.hpp"

#include <stdexcept>

#include "switchboard/log.hpp"

namespace switchboard {

void log_exception::operator()(std::exception_ptr e) const {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    SB_LOG(error) << what_ << " failed: " << ex.what();
  } catch (...) {
    SB_LOG(error) << what_ << " failed with an unknown exception";
  }
}

}  // namespace switchboard
