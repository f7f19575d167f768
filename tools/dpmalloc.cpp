// libdpmalloc.so: an LD_PRELOAD shim that counts heap allocations of the process it is loaded
// into, into a shared counter file (DPMALLOC_FILE, layout in dpmalloc.h) that dpmallocctl reads
// while the process runs. It forwards to glibc's __libc_* allocator, so it changes no behaviour.
// With backtrace sampling switched on (dpmallocctl FILE bt on), it also records the call stack of
// every DPMALLOC_BT_EVERY-th allocation (default 1), aggregated by stack.
//
//   DPMALLOC_FILE=/tmp/x.cnt LD_PRELOAD=build/tools/libdpmalloc.so build/dproxy ...
//   dpmallocctl /tmp/x.cnt snap        # counters now
//
// No allocation, lock or stdio inside the hooks; the recursion guard is a thread-local flag.

#include "dpmalloc.h"

#include <execinfo.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {

using dpmalloc::Control;

// Until the constructor maps the file, counts go to this static block (mostly untouched bss).
Control g_static;
Control* g_ctl = &g_static;
__thread bool t_in_hook __attribute__((tls_model("initial-exec")));

void record_stack(size_t bytes) {
  Control* c = g_ctl;
  if (c->bt_seen.fetch_add(1, std::memory_order_relaxed) % c->bt_every != 0) return;
  t_in_hook = true;
  void* frames[dpmalloc::kFrames + 2];
  int n = backtrace(frames, dpmalloc::kFrames + 2);
  // Drop our own two frames (record_stack, the hook); keep what called malloc/new.
  int skip = n > 2 ? 2 : 0;
  int depth = n - skip;
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < depth; ++i) {
    h ^= reinterpret_cast<uint64_t>(frames[skip + i]);
    h *= 1099511628211ull;
  }
  while (c->lock.exchange(1, std::memory_order_acquire) != 0) {
  }
  bool stored = false;
  for (uint32_t probe = 0; probe < dpmalloc::kStacks; ++probe) {
    dpmalloc::Stack& s = c->stacks[(h + probe) % dpmalloc::kStacks];
    if (s.depth == 0) {
      s.hash = h;
      s.depth = static_cast<uint32_t>(depth);
      for (int i = 0; i < depth; ++i) s.frames[i] = reinterpret_cast<uint64_t>(frames[skip + i]);
      s.count.store(1, std::memory_order_relaxed);
      s.bytes = bytes;
      ++c->nstacks;
      stored = true;
      break;
    }
    if (s.hash == h && s.depth == static_cast<uint32_t>(depth)) {
      s.count.fetch_add(1, std::memory_order_relaxed);
      s.bytes += bytes;
      stored = true;
      break;
    }
  }
  c->lock.store(0, std::memory_order_release);
  if (stored) {
    c->bt_recorded.fetch_add(1, std::memory_order_relaxed);
  } else {
    c->bt_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  t_in_hook = false;
}

inline void count(std::atomic<uint64_t>& counter, size_t bytes) {
  Control* c = g_ctl;
  counter.fetch_add(1, std::memory_order_relaxed);
  c->bytes.fetch_add(bytes, std::memory_order_relaxed);
  if (c->bt_enabled.load(std::memory_order_relaxed) && !t_in_hook) record_stack(bytes);
}

__attribute__((constructor)) void dpmalloc_init() {
  g_static.bt_every = 1;
  const char* path = std::getenv("DPMALLOC_FILE");
  if (!path || !*path) return;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  if (ftruncate(fd, sizeof(Control)) != 0) {
    close(fd);
    return;
  }
  void* m = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return;
  Control* c = static_cast<Control*>(m);  // zero-filled by ftruncate
  c->pid = static_cast<uint64_t>(getpid());
  const char* every = std::getenv("DPMALLOC_BT_EVERY");
  long e = every ? std::strtol(every, nullptr, 10) : 1;
  c->bt_every = e >= 1 ? static_cast<uint32_t>(e) : 1;
  // Carry over what was counted before we got here.
  c->mallocs.store(g_static.mallocs.load());
  c->callocs.store(g_static.callocs.load());
  c->reallocs.store(g_static.reallocs.load());
  c->memaligns.store(g_static.memaligns.load());
  c->frees.store(g_static.frees.load());
  c->bytes.store(g_static.bytes.load());
  // Load the unwinder now (backtrace() dlopens libgcc_s on first use, which allocates).
  t_in_hook = true;
  void* warm[4];
  backtrace(warm, 4);
  t_in_hook = false;
  c->magic = dpmalloc::kMagic;
  g_ctl = c;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* malloc(size_t n) {
  count(g_ctl->mallocs, n);
  return __libc_malloc(n);
}

__attribute__((visibility("default"))) void free(void* p) {
  if (p) g_ctl->frees.fetch_add(1, std::memory_order_relaxed);
  __libc_free(p);
}

__attribute__((visibility("default"))) void* calloc(size_t a, size_t b) {
  count(g_ctl->callocs, a * b);
  return __libc_calloc(a, b);
}

__attribute__((visibility("default"))) void* realloc(void* p, size_t n) {
  count(g_ctl->reallocs, n);
  return __libc_realloc(p, n);
}

__attribute__((visibility("default"))) void* memalign(size_t align, size_t n) {
  count(g_ctl->memaligns, n);
  return __libc_memalign(align, n);
}

__attribute__((visibility("default"))) void* aligned_alloc(size_t align, size_t n) {
  count(g_ctl->memaligns, n);
  return __libc_memalign(align, n);
}

__attribute__((visibility("default"))) int posix_memalign(void** out, size_t align, size_t n) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  count(g_ctl->memaligns, n);
  void* p = __libc_memalign(align, n);
  if (!p && n) return ENOMEM;
  *out = p;
  return 0;
}

__attribute__((visibility("default"))) void* valloc(size_t n) {
  count(g_ctl->memaligns, n);
  return __libc_memalign(static_cast<size_t>(sysconf(_SC_PAGESIZE)), n);
}

__attribute__((visibility("default"))) void* pvalloc(size_t n) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  count(g_ctl->memaligns, n);
  return __libc_memalign(page, (n + page - 1) / page * page);
}

}  // extern "C"
