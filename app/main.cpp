// switchboard: parses the options, builds the server, runs it.
#include <cstdio>
#include <exception>
#include <variant>

#include "switchboard/config.hpp"
#include "switchboard/log.hpp"
#include "switchboard/server.hpp"

int main(int argc, char* argv[]) {
  auto parsed = switchboard::parse_config(argc, argv);
  if (auto* exit = std::get_if<switchboard::config_exit>(&parsed)) {
    std::fputs(exit->output.c_str(), exit->code == switchboard::exit_ok ? stdout : stderr);
    return exit->code;
  }
  auto& cfg = std::get<switchboard::config>(parsed);
  switchboard::set_log_level(cfg.level);
  switchboard::set_log_format(cfg.format);
  try {
    switchboard::server server(std::move(cfg));
    return server.run();
  } catch (const switchboard::startup_error& e) {
    std::fprintf(stderr, "switchboard: %s\n", e.what());
    return switchboard::exit_runtime_error;
  }
}
