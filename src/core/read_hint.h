#pragma once
// Saves the read system call that always fails after a socket was drained.
//
// Asio's epoll reactor (1.22) starts every async read with a speculative recv(). After a short
// read, which leaves a stream socket's receive queue empty, that recv() can only fail with EAGAIN
// before the operation is queued for the next readiness edge: one wasted system call per read,
// on every client request and backend reply. The reactor already knows how to skip it (it does so
// for writes, and for reads after EOF): a per-descriptor "try speculative" flag, set by every
// readiness event. These functions clear it after a short read, so the next async read is queued
// without a recv() and performed when the next edge comes, as nutcracker does ("read until a
// short read, then wait").
//
// Used for backend connections only. A short read does not prove the peer is still there: bytes
// and a FIN that arrive together make one readiness edge, the short read takes the bytes, and the
// EOF never makes another edge, so a read queued without the speculative recv() waits forever.
// Client sockets hit that (a client that sends its last requests and closes at once, e.g. a
// health check: its session never closed), so they pay the EAGAIN recv(). A backend that answers
// and closes in one go is rare (and its pending requests still time out).
//
// NOTE: the flag is private to Asio: read_hint.cpp reaches it for exactly the Asio version and
// reactor it was written against (Debian bookworm's 1.22.1, epoll) and otherwise does nothing, so
// behaviour never depends on it, only the count of EAGAIN reads.

#include <asio.hpp>

namespace dproxy::core::read_hint {

// Call right after starting an async read on `socket`: true when the read was queued on the
// reactor (its completion will come from a readiness event), false when it completed at once
// from the speculative attempt or the hint is unavailable.
bool read_queued(asio::generic::stream_protocol::socket& socket);

// Call right after starting an async write on `socket`: true when that write may wait for the
// reactor (its first send was short or failed with EAGAIN). A read whose completion overlaps
// such a write must not call mark_drained() (see below).
bool write_may_wait(asio::generic::stream_protocol::socket& socket);

// Call from the completion of a read for which read_queued() said true, when that read was
// short: the socket was drained by it, so the next async read need not try recv() first. Any
// byte that arrives later raises a new edge (the reactor is edge-triggered), and the completion
// of a queued read runs before the reactor polls again, so no edge can be missed.
// NOTE: that last point holds only while no write on the socket waits in the reactor: the
// reactor completes a ready write first and then only posts the read's completion, behind its
// next poll, and an edge seen by that poll (while no read is queued) would be lost. Callers
// therefore skip mark_drained() for a read that overlapped a write for which write_may_wait()
// said true.
void mark_drained(asio::generic::stream_protocol::socket& socket);

}  // namespace dproxy::core::read_hint
