// The browser chat client's files (lib/switchboard/web), compiled into the
// binary by cmake/embed.cmake and served by the router at GET / and beside it.
#pragma once

#include <span>
#include <string_view>

namespace switchboard::web {

struct asset {
  std::string_view path;          // the request path: "/" for index.html, "/app.js"...
  std::string_view content_type;  // with its charset for text
  std::string_view etag;          // a quoted digest of body, taken at build time
  std::string_view body;
};

// Defined in the generated web_assets.cpp.
extern const std::span<const asset> assets;

}  // namespace switchboard::web
