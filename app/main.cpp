// switchboard: parses the options, builds the server, runs it.
#include <cstdio>
#include <exception>
#include <variant>

#include "switchboard/config.hpp"
#include "switchboard/log.hpp"
#include "switchboard/server.hpp"

#ifdef SWITCHBOARD_GDB_SCRIPT
// Debug builds name the gdb extension (sb sessions, sb async-bt...,
// docs/debugging.md) in a .debug_gdb_scripts section: gdb loads it with the
// binary once its directory is in gdb's auto-load safe-path.
asm(".pushsection \".debug_gdb_scripts\", \"MS\",@progbits,1\n"
    ".byte 1\n"
    ".asciz \"" SWITCHBOARD_GDB_SCRIPT
    "\"\n"
    ".popsection\n");
#endif

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
