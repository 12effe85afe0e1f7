// A deliberately small HTTP/1.1 client over raw loopback sockets for tests:
// well-formed requests, raw bytes (to send what no library would), and a
// Server-Sent Events reader that can be cut mid-stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ledgerkeep::test {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// Sends `request` bytes as they are and reads the reply until the server
// closes or `timeout` passes (requests carry "Connection: close").
Result<HttpReply> HttpRaw(int port, const std::string& request,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));
Result<HttpReply> HttpRequest(int port, const std::string& method, const std::string& target,
                              const std::map<std::string, std::string>& headers = {},
                              const std::string& body = "",
                              std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));

struct SseEvent {
  uint64_t id = 0;
  std::string data;
};

// One open event stream. Next() returns the next message with an id (comments
// are skipped), or nullopt when none came within `wait`. Close() cuts the
// connection at once, as a client that dies would.
class SseReader {
 public:
  static Result<SseReader> Open(int port, const std::string& target, const std::map<std::string, std::string>& headers);
  SseReader(SseReader&& o) noexcept;
  ~SseReader();
  int status() const { return status_; }
  Result<std::optional<SseEvent>> Next(std::chrono::milliseconds wait);
  void Close();

 private:
  SseReader() = default;
  int fd_ = -1;
  int status_ = 0;
  std::string buf_;     // decoded body bytes not yet parsed
  std::string raw_;     // chunked transfer bytes not yet decoded
  bool chunked_ = false;
  bool Decode();        // raw_ -> buf_; false on a malformed chunk
};

// A connection that sent `partial` bytes of a request and then nothing, as a
// slow or stuck client; ClosedByServer() tells when the server dropped it.
class StalledConnection {
 public:
  static Result<StalledConnection> Open(int port, const std::string& partial);
  StalledConnection(StalledConnection&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~StalledConnection();
  bool ClosedByServer();

 private:
  StalledConnection() = default;
  int fd_ = -1;
};

}  // namespace ledgerkeep::test
