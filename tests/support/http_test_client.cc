#include "tests/support/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace ledgerkeep::test {
namespace {

using Clock = std::chrono::steady_clock;

Result<int> ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(std::string("socket: ") + strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    return Status::Unavailable("connect 127.0.0.1:" + std::to_string(port) + ": " + strerror(e));
  }
  return fd;
}

Status SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("send: ") + strerror(errno));  // e.g. the server answered 413 and closed
    }
    off += static_cast<size_t>(n);
  }
  return Status::OK();
}

// Reads what is available within `left`; 0 = closed, -1 = nothing yet.
ssize_t ReadSome(int fd, std::string& out, std::chrono::milliseconds left) {
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
  if (r <= 0) return -1;
  char buf[16384];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n > 0) out.append(buf, static_cast<size_t>(n));
  return n < 0 ? 0 : n;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses the status line and headers of `head` (without the blank line).
bool ParseHead(const std::string& head, HttpReply& r) {
  size_t eol = head.find("\r\n");
  std::string first = head.substr(0, eol);
  if (first.rfind("HTTP/1.", 0) != 0 || first.size() < 12) return false;
  r.status = std::atoi(first.c_str() + 9);
  size_t pos = eol == std::string::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(v.begin());
      r.headers[Lower(line.substr(0, colon))] = v;
    }
    pos = end + 2;
  }
  return true;
}

// Decodes a complete chunked body; nullopt if incomplete or malformed.
std::optional<std::string> Unchunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) return std::nullopt;
    size_t len = std::strtoul(raw.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (len == 0) return out;
    if (raw.size() < eol + 2 + len + 2) return std::nullopt;
    out += raw.substr(eol + 2, len);
    pos = eol + 2 + len + 2;
  }
}

// A whole reply is in: its head and as much body as it announced (a server
// may keep the connection open after it).
bool Complete(const std::string& in) {
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  HttpReply r;
  if (!ParseHead(in.substr(0, head_end), r)) return true;
  const std::string body = in.substr(head_end + 4);
  if (Lower(r.headers["transfer-encoding"]) == "chunked") return Unchunk(body).has_value();
  auto len = r.headers.find("content-length");
  if (len != r.headers.end()) return body.size() >= std::strtoull(len->second.c_str(), nullptr, 10);
  return false;  // until the server closes
}

}  // namespace

Result<HttpReply> HttpRaw(int port, const std::string& request, std::chrono::milliseconds timeout) {
  LK_ASSIGN_OR_RETURN(int fd, ConnectLoopback(port));
  const auto deadline = Clock::now() + timeout;
  Status sent = SendAll(fd, request);
  std::string in;
  while (Clock::now() < deadline && !Complete(in)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    ssize_t n = ReadSome(fd, in, left);
    if (n == 0) break;
  }
  ::close(fd);
  size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    return Status::Unavailable("no complete HTTP reply (" + std::to_string(in.size()) + " bytes)" +
                               (sent.ok() ? "" : "; " + sent.message()));
  }
  HttpReply r;
  if (!ParseHead(in.substr(0, head_end), r)) return Status::Corruption("not an HTTP reply: " + in.substr(0, 80));
  r.body = in.substr(head_end + 4);
  if (Lower(r.headers["transfer-encoding"]) == "chunked") {
    auto body = Unchunk(r.body);
    if (!body) return Status::Corruption("malformed chunked body");
    r.body = *body;
  }
  return r;
}

Result<HttpReply> HttpRequest(int port, const std::string& method, const std::string& target,
                              const std::map<std::string, std::string>& headers, const std::string& body,
                              std::chrono::milliseconds timeout) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  return HttpRaw(port, req, timeout);
}

Result<SseReader> SseReader::Open(int port, const std::string& target,
                                  const std::map<std::string, std::string>& headers) {
  LK_ASSIGN_OR_RETURN(int fd, ConnectLoopback(port));
  SseReader r;
  r.fd_ = fd;
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  req += "\r\n";
  LK_RETURN_IF_ERROR(SendAll(fd, req));
  std::string in;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    if (Clock::now() >= deadline) return Status::Timeout("no reply head for " + target);
    if (ReadSome(fd, in, std::chrono::milliseconds(200)) == 0) return Status::Unavailable("closed before a reply");
  }
  HttpReply head;
  if (!ParseHead(in.substr(0, head_end), head)) return Status::Corruption("not an HTTP reply");
  r.status_ = head.status;
  r.chunked_ = Lower(head.headers["transfer-encoding"]) == "chunked";
  r.raw_ = in.substr(head_end + 4);
  return r;
}

SseReader::SseReader(SseReader&& o) noexcept
    : fd_(o.fd_), status_(o.status_), buf_(std::move(o.buf_)), raw_(std::move(o.raw_)), chunked_(o.chunked_) {
  o.fd_ = -1;
}

SseReader::~SseReader() { Close(); }

void SseReader::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool SseReader::Decode() {
  if (!chunked_) {
    buf_ += raw_;
    raw_.clear();
    return true;
  }
  while (true) {
    size_t eol = raw_.find("\r\n");
    if (eol == std::string::npos) return true;
    char* end = nullptr;
    const std::string size_text = raw_.substr(0, eol);
    size_t len = std::strtoul(size_text.c_str(), &end, 16);
    if (end == size_text.c_str()) return false;
    if (raw_.size() < eol + 2 + len + 2) return true;  // the rest of the chunk is still coming
    buf_ += raw_.substr(eol + 2, len);
    raw_.erase(0, eol + 2 + len + 2);
  }
}

Result<std::optional<SseEvent>> SseReader::Next(std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  while (true) {
    if (!Decode()) return Status::Corruption("malformed chunk in the event stream");
    // One message ends at a blank line.
    size_t end;
    while ((end = buf_.find("\n\n")) != std::string::npos) {
      std::string msg = buf_.substr(0, end);
      buf_.erase(0, end + 2);
      SseEvent ev;
      bool has_id = false;
      size_t pos = 0;
      while (pos <= msg.size()) {
        size_t eol = msg.find('\n', pos);
        if (eol == std::string::npos) eol = msg.size();
        std::string line = msg.substr(pos, eol - pos);
        if (line.rfind("id: ", 0) == 0) {
          ev.id = std::strtoull(line.c_str() + 4, nullptr, 10);
          has_id = true;
        } else if (line.rfind("data: ", 0) == 0) {
          ev.data += line.substr(6);
        }
        pos = eol + 1;
      }
      if (has_id) return std::optional<SseEvent>(ev);
    }
    if (fd_ < 0) return Status::Unavailable("stream closed");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::optional<SseEvent>();
    ssize_t n = ReadSome(fd_, raw_, left);
    if (n == 0) {
      Close();
      return Status::Unavailable("the server closed the stream");
    }
  }
}

Result<StalledConnection> StalledConnection::Open(int port, const std::string& partial) {
  LK_ASSIGN_OR_RETURN(int fd, ConnectLoopback(port));
  StalledConnection c;
  c.fd_ = fd;
  LK_RETURN_IF_ERROR(SendAll(fd, partial));
  return c;
}

StalledConnection::~StalledConnection() {
  if (fd_ >= 0) ::close(fd_);
}

bool StalledConnection::ClosedByServer() {
  if (fd_ < 0) return true;
  std::string ignored;
  return ReadSome(fd_, ignored, std::chrono::milliseconds(0)) == 0;
}

}  // namespace ledgerkeep::test
