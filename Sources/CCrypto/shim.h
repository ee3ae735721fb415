// Shim for OpenSSL's libcrypto (Debian libssl-dev): SHA-256 through the EVP API.
// No stable API: used only by LAQFormat's SHA256.swift.
#include <openssl/evp.h>
