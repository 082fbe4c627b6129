# Turns the files of the browser client (WEB_DIR, the names in FILES, comma
# separated) into a C++ source file OUTPUT that defines switchboard::web::assets,
# so the page ships inside the binary. index.html is served at /, every other
# file at /<its file name> (a name may be a path relative to WEB_DIR: the
# client library comes from clients/js). Each file's ETag is a digest of its
# content, taken here at build time, so a new build changes it and an
# unchanged file answers 304.
string(REPLACE "," ";" names "${FILES}")
set(data "")
set(table "")
set(index 0)
foreach(name IN LISTS names)
  set(path ${WEB_DIR}/${name})
  file(READ ${path} content HEX)
  string(LENGTH "${content}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${content}")
  file(SHA256 ${path} digest)
  string(SUBSTRING ${digest} 0 32 etag)

  get_filename_component(base ${name} NAME)
  if(base STREQUAL "index.html")
    set(url "/")
  else()
    set(url "/${base}")
  endif()
  get_filename_component(extension ${name} LAST_EXT)
  if(extension STREQUAL ".html")
    set(type "text/html; charset=utf-8")
  elseif(extension STREQUAL ".js")
    set(type "text/javascript; charset=utf-8")
  elseif(extension STREQUAL ".css")
    set(type "text/css; charset=utf-8")
  elseif(extension STREQUAL ".svg")
    set(type "image/svg+xml")
  else()
    message(FATAL_ERROR "embed.cmake: no Content-Type known for ${name}")
  endif()

  string(APPEND data "const char file_${index}[] = {${bytes} 0};\n")
  string(APPEND table "    asset{\"${url}\", \"${type}\", \"\\\"${etag}\\\"\", {file_${index}, ${size}}},\n")
  math(EXPR index "${index} + 1")
endforeach()

file(WRITE ${OUTPUT}
  "// Generated from ${WEB_DIR} by cmake/embed.cmake. Do not edit.\n"
  "#include <array>\n"
  "#include \"switchboard/web_assets.hpp\"\n"
  "namespace switchboard::web {\n"
  "namespace {\n"
  "${data}"
  "const std::array table{\n"
  "${table}"
  "};\n"
  "}  // namespace\n"
  "const std::span<const asset> assets{table};\n"
  "}  // namespace switchboard::web\n")
