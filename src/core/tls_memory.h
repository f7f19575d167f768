#pragma once
// The heap OpenSSL holds: its allocations go through counting wrappers, so the stats can show
// what TLS costs in memory (each connection's record buffers, handshake state, the contexts).

#include <cstdint>

namespace dproxy::core {

// Installs the wrappers. Call before anything uses OpenSSL; false when OpenSSL has already
// allocated (its memory is then not counted, and tls_memory_bytes() stays 0).
bool install_tls_memory_accounting();
// Bytes of the blocks OpenSSL holds now (their usable sizes), over every thread.
uint64_t tls_memory_bytes();

}  // namespace dproxy::core
