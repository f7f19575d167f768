#include "core/read_hint.h"

#if defined(ASIO_HAS_EPOLL) && !defined(ASIO_HAS_IO_URING_AS_DEFAULT) && \
    !defined(ASIO_HAS_IOCP) && ASIO_VERSION == 102201
#define DPROXY_READ_HINT 1
#endif

namespace dproxy::core::read_hint {

#ifdef DPROXY_READ_HINT
namespace {

using Socket = asio::generic::stream_protocol::socket;
using Reactor = asio::detail::epoll_reactor;
using State = Reactor::descriptor_state;
using TrySpeculative = bool (State::*)[Reactor::max_ops];
using OpQueues = asio::detail::op_queue<asio::detail::reactor_op> (State::*)[Reactor::max_ops];

// The socket's reactor state: basic_socket::impl_ is protected, reachable through a derived
// class.
struct SocketAccess : Socket {
  static State* state(Socket& socket) {
    return (socket.*&SocketAccess::impl_).get_implementation().reactor_data_;
  }
};

// descriptor_state's members are private: an explicit instantiation may name them, and hands the
// member pointers out through friend functions.
TrySpeculative try_speculative_member();
OpQueues op_queues_member();
template <TrySpeculative T, OpQueues Q>
struct Grant {
  friend TrySpeculative try_speculative_member() { return T; }
  friend OpQueues op_queues_member() { return Q; }
};
template struct Grant<&State::try_speculative_, &State::op_queue_>;

}  // namespace

// NOTE: no lock: a socket's reactor state is only touched by the one thread running its
// io_context (one per worker).
bool read_queued(asio::generic::stream_protocol::socket& socket) {
  State* state = SocketAccess::state(socket);
  return state != nullptr && !(state->*op_queues_member())[Reactor::read_op].empty();
}

bool write_may_wait(asio::generic::stream_protocol::socket& socket) {
  State* state = SocketAccess::state(socket);
  return state == nullptr || !(state->*try_speculative_member())[Reactor::write_op] ||
         !(state->*op_queues_member())[Reactor::write_op].empty();
}

void mark_drained(asio::generic::stream_protocol::socket& socket) {
  if (State* state = SocketAccess::state(socket))
    (state->*try_speculative_member())[Reactor::read_op] = false;
}

#else

bool read_queued(asio::generic::stream_protocol::socket&) {
  return false;
}
bool write_may_wait(asio::generic::stream_protocol::socket&) {
  return true;
}
void mark_drained(asio::generic::stream_protocol::socket&) {}

#endif

}  // namespace dproxy::core::read_hint
