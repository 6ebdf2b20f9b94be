# Builds the dashboard page into the binary: index.html with style.css and app.js put inline
# (where index.html links them, so the files also work opened straight from the source tree),
# written as a byte array in a .cc file. Run by `cmake -P` at build time:
#   cmake -DPAGE_DIR=... -DOUTPUT=... -P embed.cmake
file(READ "${PAGE_DIR}/index.html" html)
file(READ "${PAGE_DIR}/style.css" css)
file(READ "${PAGE_DIR}/app.js" js)
set(link "<link rel=\"stylesheet\" href=\"style.css\">")
set(script "<script src=\"app.js\"></script>")
string(FIND "${html}" "${link}" at_link)
string(FIND "${html}" "${script}" at_script)
if(at_link EQUAL -1 OR at_script EQUAL -1)
  message(FATAL_ERROR "index.html must contain ${link} and ${script}")
endif()
string(REPLACE "${link}" "<style>\n${css}</style>" html "${html}")
string(REPLACE "${script}" "<script>\n${js}</script>" html "${html}")
file(WRITE "${OUTPUT}.html" "${html}")
file(READ "${OUTPUT}.html" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
  "// Generated from src/admin/page/ by embed.cmake: do not edit.\n"
  "#include \"admin/dashboard.h\"\n\n"
  "namespace h2mesh::admin {\nnamespace {\nconst unsigned char kPage[${size}] = {\n${bytes}};\n}  // namespace\n\n"
  "std::string_view dashboard_page() {\n  return {reinterpret_cast<const char*>(kPage), sizeof kPage};\n}\n\n"
  "}  // namespace h2mesh::admin\n")
# Only a changed page rebuilds what includes it.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
