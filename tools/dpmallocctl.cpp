// dpmallocctl: reads and controls the counter file of a process running with libdpmalloc.so.
//
//   dpmallocctl FILE snap              one line: allocs=.. mallocs=.. callocs=.. reallocs=..
//                                      memaligns=.. frees=.. bytes=..
//   dpmallocctl FILE bt on|off|clear   start/stop recording allocation call stacks, or forget
//                                      the recorded ones
//   dpmallocctl FILE stacks [TOP]      the TOP (default 15) most frequent recorded stacks,
//                                      symbolized with addr2line (the process must still run)

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "dpmalloc.h"

namespace {

struct Mapping {
  uint64_t start, end, offset;
  std::string path;
};

std::vector<Mapping> read_maps(uint64_t pid) {
  std::vector<Mapping> maps;
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string range, perms, off, dev, inode, path;
    ls >> range >> perms >> off >> dev >> inode >> path;
    if (path.empty() || path[0] != '/') continue;
    Mapping m;
    m.start = std::strtoull(range.c_str(), nullptr, 16);
    m.end = std::strtoull(range.substr(range.find('-') + 1).c_str(), nullptr, 16);
    m.offset = std::strtoull(off.c_str(), nullptr, 16);
    m.path = path;
    maps.push_back(m);
  }
  return maps;
}

// Load base of each file: start of its mapping with file offset 0.
uint64_t base_of(const std::vector<Mapping>& maps, const std::string& path) {
  for (const auto& m : maps)
    if (m.path == path && m.offset == 0) return m.start;
  return 0;
}

struct Sym {
  std::string text;  // "func (file:line)" possibly with inlined frames joined by " <- "
};

// Symbolizes (file, relative address) pairs with one addr2line run per file.
std::map<uint64_t, std::string> symbolize(const std::vector<Mapping>& maps,
                                          const std::vector<uint64_t>& addrs) {
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> by_file;  // rel, abs
  std::map<uint64_t, std::string> out;
  for (uint64_t a : addrs) {
    const Mapping* hit = nullptr;
    for (const auto& m : maps)
      if (a >= m.start && a < m.end) hit = &m;
    if (!hit) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%" PRIx64, a);
      out[a] = buf;
      continue;
    }
    by_file[hit->path].push_back({a - base_of(maps, hit->path) - 1, a});  // -1: inside the call
  }
  for (auto& [file, list] : by_file) {
    std::string cmd = "addr2line -a -f -C -i -e '" + file + "'";
    for (auto& [rel, abs] : list) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " 0x%" PRIx64, rel);
      cmd += buf;
    }
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) continue;
    std::vector<std::string> lines;
    char line[4096];
    while (std::fgets(line, sizeof line, p)) {
      std::string s(line);
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      lines.push_back(s);
    }
    pclose(p);
    // Output: "0xADDR" then pairs (function, file:line), innermost inline first.
    size_t idx = 0;
    std::string base = file.substr(file.rfind('/') + 1);
    for (auto& [rel, abs] : list) {
      if (idx >= lines.size()) break;
      ++idx;  // the address line
      std::string text;
      while (idx + 1 < lines.size() + 1 && idx < lines.size() && lines[idx].rfind("0x", 0) != 0) {
        std::string fn = lines[idx];
        std::string loc = idx + 1 < lines.size() ? lines[idx + 1] : "";
        idx += 2;
        size_t slash = loc.rfind('/');
        if (slash != std::string::npos) loc = loc.substr(slash + 1);
        if (!text.empty()) text += "  <inlined in>  ";
        text += fn + " (" + (loc.rfind("??", 0) == 0 ? base : loc) + ")";
      }
      out[abs] = text;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: dpmallocctl FILE snap | bt on|off|clear | stacks [TOP]\n");
    return 2;
  }
  int fd = open(argv[1], O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::perror(argv[1]);
    return 1;
  }
  void* m = mmap(nullptr, sizeof(dpmalloc::Control), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* c = static_cast<dpmalloc::Control*>(m);
  if (c->magic != dpmalloc::kMagic) {
    std::fprintf(stderr, "dpmallocctl: %s is not a dpmalloc counter file (yet)\n", argv[1]);
    return 1;
  }
  std::string cmd = argv[2];
  if (cmd == "snap") {
    uint64_t ma = c->mallocs, ca = c->callocs, re = c->reallocs, al = c->memaligns;
    std::printf("allocs=%" PRIu64 " mallocs=%" PRIu64 " callocs=%" PRIu64 " reallocs=%" PRIu64
                " memaligns=%" PRIu64 " frees=%" PRIu64 " bytes=%" PRIu64 "\n",
                ma + ca + re + al, ma, ca, re, al, c->frees.load(), c->bytes.load());
    return 0;
  }
  if (cmd == "bt" && argc >= 4) {
    if (std::strcmp(argv[3], "clear") == 0) {
      while (c->lock.exchange(1, std::memory_order_acquire) != 0) {
      }
      for (auto& s : c->stacks) {
        s.depth = 0;
        s.count.store(0);
        s.bytes = 0;
        s.hash = 0;
      }
      c->nstacks = 0;
      c->bt_recorded.store(0);
      c->bt_dropped.store(0);
      c->lock.store(0, std::memory_order_release);
    } else {
      c->bt_enabled.store(std::strcmp(argv[3], "on") == 0 ? 1 : 0);
    }
    return 0;
  }
  if (cmd == "stacks") {
    int top = argc >= 4 ? std::atoi(argv[3]) : 15;
    std::vector<const dpmalloc::Stack*> stacks;
    for (const auto& s : c->stacks)
      if (s.depth > 0) stacks.push_back(&s);
    std::sort(stacks.begin(), stacks.end(),
              [](auto* a, auto* b) { return a->count.load() > b->count.load(); });
    if (static_cast<int>(stacks.size()) > top) stacks.resize(static_cast<size_t>(top));
    std::vector<uint64_t> addrs;
    for (auto* s : stacks)
      for (uint32_t i = 0; i < s->depth; ++i) addrs.push_back(s->frames[i]);
    std::sort(addrs.begin(), addrs.end());
    addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
    auto maps = read_maps(c->pid);
    auto names = symbolize(maps, addrs);
    std::printf("recorded %" PRIu64 " allocation stacks (1 in %u sampled, %" PRIu64
                " dropped), %u distinct\n",
                c->bt_recorded.load(), c->bt_every, c->bt_dropped.load(), c->nstacks);
    for (auto* s : stacks) {
      std::printf("\n%" PRIu64 " allocations, %" PRIu64 " bytes:\n", s->count.load(), s->bytes);
      for (uint32_t i = 0; i < s->depth; ++i) {
        const std::string& n = names[s->frames[i]];
        // Skip the C runtime's bottom frames.
        if (n.find("__libc_start") != std::string::npos || n.find("_start (") == 0) break;
        std::printf("    #%-2u %s\n", i, n.c_str());
      }
    }
    return 0;
  }
  std::fprintf(stderr, "dpmallocctl: unknown command '%s'\n", cmd.c_str());
  return 2;
}
