// Connection: the protocol-free client side of a session. See connection.h.

#include "core/session/connection.h"

#include <cstring>

#include "core/buffer_pool.h"
#include "core/log.h"
#include "core/session/connection_tls.h"
#include "core/stats.h"
#include "core/worker.h"

namespace dproxy::core {

Connection::Connection(Worker& worker, PoolSlot& pool_slot,
                       asio::generic::stream_protocol::socket socket, uint64_t id,
                       size_t max_request_bytes)
    : worker_(worker),
      slot_(pool_slot),
      socket_(std::move(socket)),
      id_(id),
      max_request_bytes_(max_request_bytes) {}

Connection::~Connection() = default;

void Connection::add_memory(MemoryStats& m) const {
  m.client_buffer_bytes += rbuf_.capacity() + out_.capacity() + writing_buf_.capacity();
  m.reply_slots += slot_storage_.size();
  for (const auto& slot : slot_storage_)
    m.reply_slot_bytes += sizeof(ReplySlot) + slot->data.capacity() + slot->frame.capacity();
}

void Connection::start_io() {
  asio::error_code ec;
  auto local = socket_.local_endpoint(ec);
  if (!ec && local.protocol().family() != AF_UNIX)
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (slot_.tls && slot_.tls->accept) [[unlikely]] {
    start_handshake();
    return;
  }
  start_read();
}

void Connection::record_latency(const ReplySlot* slot) {
  if (slot->command == ReplySlot::kNoCommand) return;
  auto elapsed = worker_.now() - slot->started;
  int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  slot_.counters.record_latency(slot->command, us < 0 ? 0 : static_cast<uint64_t>(us));
}

bool Connection::paused() const {
  return input_held_ || slots_.size() >= kMaxPendingSlots ||
         out_.size() + writing_buf_.size() + held_bytes_ >= kMaxBufferedReplyBytes;
}

void Connection::start_read() {
  if (reading_ || closed_ || stop_input_) return;
  if (paused()) {
    read_paused_ = true;  // drain() resumes reading once replies are written
    return;
  }
  if (rbuf_.empty() && tls_ != nullptr) rbuf_.resize(kInitialReadBuffer);
  if (rbuf_.empty()) {
    // Nothing read yet: wait for the first bytes without holding a read buffer, so that idle
    // connections stay small; the buffer is allocated once data arrives.
    reading_ = true;
    socket_.async_wait(
        asio::socket_base::wait_read,
        with_memory(read_memory_, [self = shared_from_this()](const asio::error_code& ec) {
          self->reading_ = false;
          if (self->closed_) return;
          if (ec) {
            self->close();
            return;
          }
          self->rbuf_.resize(kInitialReadBuffer);
          self->start_read();
        }));
    return;
  }
  if (rstart_ == rend_) rstart_ = rend_ = 0;
  if (rend_ - rstart_ >= max_request_bytes_ || need_ > max_request_bytes_) {
    // One request bigger than any value this pool accepts: refuse it rather than buffer more.
    ReplySlot* slot = ready_slot(request_too_large_reply());
    slot->close_after = true;
    stop_input_ = true;
    drain();
    return;
  }
  size_t want = std::max(need_, rend_ - rstart_ + 1);
  if (rbuf_.size() - rstart_ < want || rend_ == rbuf_.size()) {
    // Compact, then grow when the pending frame still does not fit.
    if (rstart_ > 0) {
      std::memmove(rbuf_.data(), rbuf_.data() + rstart_, rend_ - rstart_);
      rend_ -= rstart_;
      rstart_ = 0;
    }
    if (rbuf_.size() < want || rend_ == rbuf_.size())
      rbuf_.resize(std::max(want, rbuf_.size() * 2));
  }
  reading_ = true;
  if (tls_ != nullptr) [[unlikely]] {
    tls_read();
    return;
  }
  socket_.async_read_some(
      asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_),
      with_memory(read_memory_, [self = shared_from_this()](const asio::error_code& ec, size_t n) {
        self->on_read(ec, n);
      }));
}

void Connection::on_read(const asio::error_code& ec, size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec == asio::error::eof) {
    // The client finished sending (or half-closed): answer everything it sent, then close.
    ++slot_.counters.client_eof;
    if (close_on_input_end()) {
      close();
      return;
    }
    stop_input_ = true;
    close_when_done_ = true;
    drain();
    return;
  }
  if (ec) {
    if (ec != asio::error::operation_aborted) {
      ++slot_.counters.client_err;
      LOG_DEBUG("client %llu: read error: %s", static_cast<unsigned long long>(id_),
                ec.message().c_str());
    }
    close();
    return;
  }
  worker_.tick();
  rend_ += n;
  process();
  start_read();
}

void Connection::begin_drain() {
  if (closed_) return;
  if (close_on_input_end()) {
    close();
    return;
  }
  // Input the front end holds (behind a replicated read, say) was read: it is still answered
  // (the read that ends with EOF then stops the input).
  if (!input_held_) stop_input_ = true;
  close_when_done_ = true;
  // A read in progress ends with EOF; nothing more is read from this client.
  asio::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_receive, ignored);
  drain();
}

ReplySlot* Connection::new_slot(ReplySlot::Kind kind) {
  ReplySlot* slot;
  if (free_slots_.empty()) {
    slot_storage_.push_back(std::make_unique<ReplySlot>());
    slot = slot_storage_.back().get();
    // Room for a typical reply held back for ordering, kept by the slot: only larger ones
    // borrow a pool buffer (hold_buffer), so pipelined small replies do not tie up 2 KiB each.
    slot->data.reserve(ReplySlot::kHeldReplyCapacity);
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slot->reset();
  }
  slot->kind = kind;
  slot->command = cur_command_;
  slot->started = worker_.now();
  slots_.push_back(slot);
  return slot;
}

std::string& Connection::out_buffer() {
  if (out_.empty() && out_.capacity() < BufferPool::kInitialCapacity)
    worker_.reply_buffers().take(out_);
  return out_;
}

std::string& Connection::hold_buffer(std::string& buf, size_t need) {
  if (buf.empty() && buf.capacity() < need) worker_.reply_buffers().take(buf);
  return buf;
}

ReplySlot* Connection::ready_slot(std::string_view reply) {
  ReplySlot* slot = new_slot(ReplySlot::Kind::kReady);
  slot->data.assign(reply);
  slot->done = true;
  return slot;
}

void Connection::drain() {
  while (!slots_.empty() && slots_.front()->done) {
    ReplySlot* slot = slots_.pop_front();
    record_latency(slot);
    held_bytes_ -= slot->held;
    slot->held = 0;
    if (translator_ != nullptr) {
      translator_->translate(*slot, slot->noreply || closed_ ? nullptr : &out_buffer());
    } else if (!slot->noreply && !closed_) {
      out_buffer().append(slot->data);
    }
    // A reply held in a borrowed buffer (see hold_buffer) gives it back.
    if (slot->data.capacity() >= BufferPool::kInitialCapacity)
      worker_.reply_buffers().give(slot->data);
    bool close_after = slot->close_after;
    if (slot->outstanding > 0) {
      // Answered before every fragment came back (write_ack majority/one): the late ones still
      // point at this slot, so it is recycled when the last arrives.
      slot->orphaned = true;
    } else {
      free_slots_.push_back(slot);
    }
    if (close_after) {
      close_after_write_ = true;
      break;
    }
  }
  // Not while a posted process() (held or paused input) may still add replies.
  if (close_when_done_ && slots_.empty() && !resume_posted_) close_after_write_ = true;
  start_write();
  if (read_paused_ && !reading_ && !closed_ && !stop_input_ && !paused() && !resume_posted_) {
    // Reading was paused by backpressure: resume outside the current call stack.
    read_paused_ = false;
    resume_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->resume_posted_ = false;
      self->process();
      self->start_read();
    });
  }
}

void Connection::start_write() {
  if (closed_ || writing_) return;
  if (out_.empty()) {
    if (close_after_write_) close();
    return;
  }
  writing_ = true;
  // writing_buf_ gave its memory back when the last write completed: the output buffer moves
  // over, and the next reply borrows another one (out_buffer()).
  writing_buf_ = std::move(out_);
  out_.clear();
  if (tls_ != nullptr) [[unlikely]] {
    tls_write();
    return;
  }
  asio::async_write(
      socket_, asio::buffer(writing_buf_),
      with_memory(write_memory_, [self = shared_from_this()](const asio::error_code& ec, size_t) {
        self->writing_ = false;
        self->worker_.reply_buffers().give(self->writing_buf_);
        if (ec) {
          ++self->slot_.counters.client_err;
          self->close();
          return;
        }
        self->drain();
      }));
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  worker_.remove_session(id_);
  if (tls_ != nullptr) [[unlikely]]
    tls_closed();
  asio::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_both, ignored);
  socket_.close(ignored);
  worker_.reply_buffers().give(out_);
  on_closed();
}

}  // namespace dproxy::core
