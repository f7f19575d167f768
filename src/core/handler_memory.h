#pragma once
// Per-object memory for Asio operations, so that a steady-state read / write / timer cycle
// never touches the heap (Asio's per-thread recycling cache misses under bursts of operations
// of mixed sizes).

#include <asio/bind_allocator.hpp>
#include <cstddef>
#include <new>
#include <utility>

namespace dproxy::core {

// Storage for one asynchronous operation at a time. A second operation while the block is in
// use, or one larger than the block, goes to the heap (correct, only slower).
// NOTE: must outlive every operation allocated from it, including operations destroyed without
// running when their io_context is destroyed: keep it in an object the handler keeps alive
// (the session the handler holds a shared_ptr to, or a block shared with the handler).
// `Size`: 320 holds an async_write of one buffer (280 bytes); the operations of a TLS stream
// (Asio's SSL io_op around the socket operation) need TlsHandlerMemory.
template <size_t Size>
class BasicHandlerMemory {
 public:
  static constexpr size_t kSize = Size;

  BasicHandlerMemory() = default;
  BasicHandlerMemory(const BasicHandlerMemory&) = delete;
  BasicHandlerMemory& operator=(const BasicHandlerMemory&) = delete;

  void* allocate(size_t size, size_t align) {
    if (!in_use_ && size <= kSize && align <= alignof(std::max_align_t)) {
      in_use_ = true;
      return storage_;
    }
    return ::operator new(size, std::align_val_t(align));
  }
  void deallocate(void* p, size_t size, size_t align) {
    if (p == storage_) {
      in_use_ = false;
      return;
    }
    ::operator delete(p, size, std::align_val_t(align));
  }

 private:
  alignas(std::max_align_t) unsigned char storage_[kSize];
  bool in_use_ = false;
};

using HandlerMemory = BasicHandlerMemory<320>;
using TlsHandlerMemory = BasicHandlerMemory<1024>;

// The allocator Asio uses for a handler bound with with_memory().
template <typename T, typename Memory = HandlerMemory>
class HandlerAllocator {
 public:
  using value_type = T;
  explicit HandlerAllocator(Memory& memory) noexcept : memory_(&memory) {}
  template <typename U>
  HandlerAllocator(const HandlerAllocator<U, Memory>& other) noexcept : memory_(other.memory_) {}
  template <typename U>
  struct rebind {
    using other = HandlerAllocator<U, Memory>;
  };

  T* allocate(size_t n) { return static_cast<T*>(memory_->allocate(sizeof(T) * n, alignof(T))); }
  void deallocate(T* p, size_t n) { memory_->deallocate(p, sizeof(T) * n, alignof(T)); }

  template <typename U>
  bool operator==(const HandlerAllocator<U, Memory>& other) const noexcept {
    return memory_ == other.memory_;
  }

 private:
  template <typename, typename>
  friend class HandlerAllocator;
  Memory* memory_;
};

// `handler`, with its operation's memory taken from `memory`.
template <size_t Size, typename Handler>
auto with_memory(BasicHandlerMemory<Size>& memory, Handler&& handler) {
  return asio::bind_allocator(HandlerAllocator<char, BasicHandlerMemory<Size>>(memory),
                              std::forward<Handler>(handler));
}

}  // namespace dproxy::core
