// Boost.JSON compiled from its sources into the fuzz targets, with their
// flags, so that libFuzzer sees the coverage of its parser and the sanitizers
// check it; the library build links the prebuilt Boost::json instead.
#include <boost/json/src.hpp>
