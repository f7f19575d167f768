#include "core/tls_memory.h"

#include <malloc.h>
#include <openssl/crypto.h>

#include <atomic>
#include <cstdlib>

namespace dproxy::core {

namespace {

// Relaxed: a figure for the stats, never used to order anything. OpenSSL allocates on the
// worker threads (handshakes, records) and the main thread (contexts, reloads).
std::atomic<int64_t> g_bytes{0};
bool g_installed = false;

void* counted_malloc(size_t n, const char*, int) {
  void* p = std::malloc(n);
  if (p) g_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  return p;
}

void counted_free(void* p, const char*, int) {
  if (!p) return;
  g_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  std::free(p);
}

void* counted_realloc(void* p, size_t n, const char* file, int line) {
  if (!p) return counted_malloc(n, file, line);
  if (n == 0) {
    counted_free(p, file, line);
    return nullptr;
  }
  const auto before = static_cast<int64_t>(malloc_usable_size(p));
  void* q = std::realloc(p, n);
  if (q) {
    g_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(q)) - before,
                      std::memory_order_relaxed);
  }
  return q;
}

}  // namespace

bool install_tls_memory_accounting() {
  g_installed = CRYPTO_set_mem_functions(counted_malloc, counted_realloc, counted_free) == 1;
  return g_installed;
}

uint64_t tls_memory_bytes() {
  if (!g_installed) return 0;
  const int64_t v = g_bytes.load(std::memory_order_relaxed);
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}

}  // namespace dproxy::core
