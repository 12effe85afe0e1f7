# cmake -DIN=<file> -DOUT=<file.cc> -DHEADER=<include> -DFUNC=<name> -P EmbedText.cmake
# Writes a source file whose function returns IN's text (the broker's status
# page is edited as a plain HTML file and compiled in).
file(READ "${IN}" content)
string(FIND "${content}" ")LKTEXT\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )LKTEXT\"")
endif()
file(WRITE "${OUT}.tmp" "// Generated from ${IN} by cmake/EmbedText.cmake; do not edit.\n#include \"${HEADER}\"\n\nnamespace ledgerkeep {\n\nstd::string_view ${FUNC}() {\n  static constexpr char kText[] = R\"LKTEXT(${content})LKTEXT\";\n  return {kText, sizeof kText - 1};\n}\n\n}  // namespace ledgerkeep\n")
file(RENAME "${OUT}.tmp" "${OUT}")
