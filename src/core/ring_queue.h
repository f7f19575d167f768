#pragma once
// A FIFO queue over a power-of-two ring buffer. Unlike std::deque it keeps its storage when
// drained, so a steady-state push/pop cycle never touches the heap.

#include <cstddef>
#include <utility>
#include <vector>

namespace dproxy::core {

template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return items_[head_]; }
  T& back() { return items_[(head_ + size_ - 1) & (items_.size() - 1)]; }
  // i-th element from the front.
  T& operator[](size_t i) { return items_[(head_ + i) & (items_.size() - 1)]; }

  // Room for at least n elements (rounded up to a power of two) without growing.
  void reserve(size_t n) {
    size_t cap = items_.empty() ? 16 : items_.size();
    while (cap < n) cap *= 2;
    if (cap > items_.size()) grow_to(cap);
  }

  void push_back(T value) {
    if (size_ == items_.size()) grow();
    items_[(head_ + size_) & (items_.size() - 1)] = std::move(value);
    ++size_;
  }
  // Moves the front element out (the slot is left moved-from, releasing what it held).
  T pop_front() {
    T value = std::move(items_[head_]);
    items_[head_] = T{};
    head_ = (head_ + 1) & (items_.size() - 1);
    --size_;
    return value;
  }

 private:
  void grow() { grow_to(items_.empty() ? 16 : items_.size() * 2); }
  void grow_to(size_t cap) {
    std::vector<T> bigger(cap);
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
    items_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<T> items_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace dproxy::core
