// Shim for zlib (Debian zlib1g-dev). No stable API: used only by LAQFormat's
// Compression.swift, the one place that calls zlib.
#include <zlib.h>
