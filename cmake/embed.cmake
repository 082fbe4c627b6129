# Turns INPUT into a C++ source file OUTPUT that defines
# switchboard::web::index_html, so the page ships inside the binary.
file(READ ${INPUT} content HEX)
string(LENGTH "${content}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${content}")
file(WRITE ${OUTPUT}
  "// Generated from ${INPUT} by cmake/embed.cmake. Do not edit.\n"
  "#include <string_view>\n"
  "namespace switchboard::web {\n"
  "static const char index_html_data[] = {${bytes} 0};\n"
  "extern const std::string_view index_html{index_html_data, ${size}};\n"
  "}\n")
