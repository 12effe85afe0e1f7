// What the agent HTTP API tests share: a raw HTTP/1.1 client (so a test
// controls every byte it sends and checks every byte it gets), shell-like
// word splitting for the runbook's curl lines, and the issuers of the
// commands in the event log.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "client/broker_client.h"
#include "common/clock.h"
#include "common/status.h"
#include "tests/support/test_cluster.h"

namespace ledgerkeep::test {

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  nlohmann::json json;  // discarded when the body is not JSON
  std::string raw;
  std::string Describe() const { return "HTTP " + std::to_string(status) + ": " + body.substr(0, 600); }
};

// A TCP connection to 127.0.0.1:port, or -1.
inline int ConnectLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The reply in `raw`: a status line, headers, and a body of Content-Length
// bytes. Corruption naming what is malformed.
inline Result<HttpReply> ParseHttpReply(std::string raw) {
  HttpReply r;
  r.raw = raw;
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return Status::Corruption("no end of headers in: " + raw.substr(0, 200));
  const std::string head = raw.substr(0, head_end);
  if (head.rfind("HTTP/1.1 ", 0) != 0 || head.size() < 12) {
    return Status::Corruption("not an HTTP/1.1 status line: " + head.substr(0, 80));
  }
  r.status = std::atoi(head.c_str() + 9);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    const size_t next = head.find("\r\n", pos + 2);
    const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    const auto colon = line.find(':');
    if (colon == std::string::npos) return Status::Corruption("malformed header line: " + line);
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
    pos = next;
  }
  r.body = raw.substr(head_end + 4);
  auto cl = r.headers.find("content-length");
  if (cl == r.headers.end()) return Status::Corruption("no Content-Length");
  if (std::to_string(r.body.size()) != cl->second) {
    return Status::Corruption("Content-Length " + cl->second + " but " + std::to_string(r.body.size()) +
                              " body bytes");
  }
  r.json = nlohmann::json::parse(r.body, nullptr, false);
  return r;
}

// True once `raw` holds a whole answer: headers and Content-Length bytes.
inline bool CompleteHttpReply(const std::string& raw) {
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string head = raw.substr(0, head_end);
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto cl = head.find("\r\ncontent-length:");
  if (cl == std::string::npos) return false;  // read until the server closes
  return raw.size() - head_end - 4 >= std::strtoull(head.c_str() + cl + 17, nullptr, 10);
}

// Sends `request` as is and reads one answer (until its Content-Length, or
// until the server closes).
inline Result<HttpReply> RawHttp(int port, std::string_view request,
                                 std::chrono::milliseconds timeout = std::chrono::milliseconds(30'000)) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return Status::Unavailable("cannot connect to 127.0.0.1:" + std::to_string(port));
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413) and close before reading it all
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  const int64_t deadline = MonotonicMs() + timeout.count();
  char buf[65536];
  while (true) {
    const int64_t left = deadline - MonotonicMs();
    if (left <= 0) {
      ::close(fd);
      return Status::Timeout("no complete answer within " + std::to_string(timeout.count()) + " ms; got: " +
                             raw.substr(0, 200));
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed (or reset after the answer)
    raw.append(buf, static_cast<size_t>(n));
    // Not waiting for the close: an answer to a request httplib could not
    // parse keeps the connection until its read timeout.
    if (CompleteHttpReply(raw)) break;
  }
  ::close(fd);
  return ParseHttpReply(std::move(raw));
}

// One request with Connection: close (and Content-Length when a body is given).
inline Result<HttpReply> Http(int port, const std::string& method, const std::string& target,
                              const std::string& body = "", const std::vector<std::string>& headers = {}) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  return RawHttp(port, req);
}

// A command line split into words as a POSIX shell would for these lines:
// blanks and line breaks separate words, '...' and "..." group (the quotes
// go; a line break inside quotes stays), a backslash escapes the next byte
// outside single quotes. Nothing is expanded.
inline std::vector<std::string> ShellWords(std::string_view text) {
  std::vector<std::string> words;
  std::string w;
  bool in_word = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(w));
      w.clear();
      in_word = false;
    } else if (c == '\'') {
      in_word = true;
      for (++i; i < text.size() && text[i] != '\''; ++i) w.push_back(text[i]);
    } else if (c == '"') {
      in_word = true;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\' && i + 1 < text.size()) ++i;
        w.push_back(text[i]);
      }
    } else if (c == '\\' && i + 1 < text.size()) {
      in_word = true;
      w.push_back(text[++i]);
    } else {
      in_word = true;
      w.push_back(c);
    }
  }
  if (in_word) words.push_back(std::move(w));
  return words;
}

// The issuer of every CommandIssued event, in order, with its kind.
struct IssuedCommand {
  uint64_t cmd_id = 0;
  std::string kind;
  std::string issuer;
};
inline Result<std::vector<IssuedCommand>> IssuedCommands(BrokerClient& client) {
  LK_ASSIGN_OR_RETURN(EventDump dump, FetchAllEvents(client, "command"));
  std::vector<IssuedCommand> out;
  for (const auto& env : dump.events) {
    const auto* c = EventOf(env).body_as_CommandIssued();
    if (c == nullptr) continue;
    out.push_back({c->cmd_id(), c->kind() ? c->kind()->str() : "", c->issuer() ? c->issuer()->str() : ""});
  }
  return out;
}

// How many commands the agent HTTP API issued so far.
inline Result<size_t> CommandsFromHttp(BrokerClient& client) {
  LK_ASSIGN_OR_RETURN(auto issued, IssuedCommands(client));
  size_t n = 0;
  for (const auto& c : issued) n += c.issuer.find("agent HTTP API") != std::string::npos ? 1 : 0;
  return n;
}

}  // namespace ledgerkeep::test
