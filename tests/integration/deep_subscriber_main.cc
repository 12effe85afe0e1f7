// itest_deep_subscriber: a helper process for malformed_input_test. It
// connects an XSUB with CURVE to a broker endpoint, subscribes to one very
// long topic and to PREFIX (`evt.` or `cmd.`), waits until one event arrives (so the broker has
// processed both subscriptions, in order), and leaves with _exit(0): its own
// libzmq would otherwise walk that long topic recursively on close and
// overflow its stack, which says nothing about the broker.
//
//   itest_deep_subscriber ENDPOINT SERVER_PUBLIC OWN_PUBLIC OWN_SECRET LENGTH PREFIX
#include <unistd.h>
#include <zmq.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s ENDPOINT SERVER_PUBLIC OWN_PUBLIC OWN_SECRET LENGTH PREFIX\n",
                 argv[0]);
    return 2;
  }
  void* ctx = zmq_ctx_new();
  void* s = zmq_socket(ctx, ZMQ_XSUB);
  int64_t unlimited = -1;
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &unlimited, sizeof unlimited);
  zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, argv[2], 40);
  zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, argv[3], 40);
  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, argv[4], 40);
  if (zmq_connect(s, argv[1]) != 0) {
    std::fprintf(stderr, "connect: %s\n", zmq_strerror(zmq_errno()));
    return 1;
  }
  std::string deep(1 + std::strtoul(argv[5], nullptr, 10), 'd');
  deep[0] = '\x01';
  zmq_send(s, deep.data(), deep.size(), 0);
  const std::string prefix = std::string("\x01") + argv[6];
  zmq_send(s, prefix.data(), prefix.size(), 0);
  std::printf("subscribed (%zu bytes); waiting for a message\n", deep.size() - 1);
  std::fflush(stdout);
  char buf[256];
  int timeout_ms = 20'000;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
  if (zmq_recv(s, buf, sizeof buf, 0) < 0) {
    std::printf("no message: %s\n", zmq_strerror(zmq_errno()));
    std::fflush(stdout);
    _exit(1);
  }
  std::printf("message received\n");
  std::fflush(stdout);
  _exit(0);
}
