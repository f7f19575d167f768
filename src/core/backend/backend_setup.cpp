#include "core/backend/backend_setup.h"

#include <string_view>

#include "protocol/resp/reply_writer.h"

namespace dproxy::core {

std::string backend_setup(const PoolConfig& config, int64_t db, uint32_t& replies, bool resp3) {
  std::string setup;
  replies = 0;
  if (config.protocol != Protocol::kRedis) {
    if (config.server_password.empty()) return setup;
    const size_t len = config.server_user.size() + 1 + config.server_password.size();
    setup.append("set auth 0 0 ").append(std::to_string(len)).append("\r\n");
    setup.append(config.server_user).append(" ").append(config.server_password).append("\r\n");
    replies = 1;
    return setup;
  }
  if (!config.server_password.empty()) {
    if (config.server_user.empty()) {
      std::string_view auth[] = {"AUTH", config.server_password};
      protocol::resp::append_command(setup, auth);
    } else {
      std::string_view auth[] = {"AUTH", config.server_user, config.server_password};
      protocol::resp::append_command(setup, auth);
    }
    ++replies;
  }
  if (resp3) {
    setup.append("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n");
    ++replies;
  }
  if (db != 0) {
    std::string n = std::to_string(db);
    std::string_view select[] = {"SELECT", n};
    protocol::resp::append_command(setup, select);
    ++replies;
  }
  return setup;
}

}  // namespace dproxy::core
