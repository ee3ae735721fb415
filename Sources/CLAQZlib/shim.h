// Shim for zlib (Debian zlib1g-dev); named CLAQZlib because ZIPFoundation defines a CZlib module. No stable API: used only by LAQFormat's
// Compression.swift, the one place that calls zlib.
#include <zlib.h>
