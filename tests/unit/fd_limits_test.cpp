// The descriptor reserve and the accept guard on real sockets. Running out of descriptors
// happens in a forked child (EXPECT_EXIT), so the test process keeps its own limit.
#include "fd_limits.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace sluice {
namespace {

bool isDevNull(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISCHR(st.st_mode);
}

TEST(DescriptorReserve, RetakeKeepsTheSocketsNumberAndClosesTheSocket) {
  DescriptorReserve reserve;
  ASSERT_TRUE(reserve.held());
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  reserve.release();
  EXPECT_FALSE(reserve.held());
  const int number = pair[0];
  EXPECT_TRUE(reserve.retake(number));
  EXPECT_TRUE(reserve.held());
  // The number now names /dev/null; the socket it named is closed (its peer reads EOF).
  EXPECT_TRUE(isDevNull(number));
  char byte;
  EXPECT_EQ(::read(pair[1], &byte, 1), 0);
  ::close(pair[1]);
}

TEST(DescriptorReserve, RetakeWithASocketWhileHeldClosesTheSocket) {
  DescriptorReserve reserve;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  EXPECT_TRUE(reserve.retake(pair[0]));
  char byte;
  EXPECT_EQ(::read(pair[1], &byte, 1), 0);
  EXPECT_EQ(::fcntl(pair[0], F_GETFD), -1);  // closed, not kept as a second reserve
  ::close(pair[1]);
}

// Out of descriptors: one failed accept resets every client waiting in the queue (each
// on the reserved number), the reserve is held again afterwards, and the pause is short.
void shedEveryWaitingClient() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto endpoint = acceptor.local_endpoint();
  std::vector<int> clients;
  for (int i = 0; i < 5; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(endpoint.port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) _exit(10);
    clients.push_back(fd);
  }
  AcceptGuard guard("test");
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = 64;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(11);
  while (::open("/dev/null", O_RDONLY) >= 0) {
  }
  if (errno != EMFILE) _exit(12);
  boost::system::error_code ec;
  acceptor.accept(ec);
  if (ec.value() != EMFILE) _exit(13);
  const auto pause = guard.failed(acceptor, ec);
  if (guard.shed() != 5) _exit(20 + static_cast<int>(guard.shed()));
  if (pause.count() <= 0 || pause.count() > 200) _exit(14);
  for (int fd : clients) {
    char byte;
    if (::read(fd, &byte, 1) != -1 || errno != ECONNRESET) _exit(15);
  }
  // Nothing waits now: the next failure sheds nothing and does not block.
  guard.failed(acceptor, ec);
  if (guard.shed() != 5) _exit(16);
  _exit(0);
}

// The reserve lost (another thread took its number while it was free, modelled by the
// guard being made when no number is free): the listener itself resets its queue, every
// waiting client sees a reset at once, and the same listener accepts again afterwards.
void resetQueueWithoutAReserve() {
  asio::io_context io;
  // Bound to a port by number, as the daemons' listeners are: the kernel keeps such a
  // port across the reset (a port it chose itself would be let go and a new one chosen).
  uint16_t port = tcp::acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)).local_endpoint().port();
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  const auto endpoint = acceptor.local_endpoint();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(endpoint.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> clients;
  for (int i = 0; i < 5; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) _exit(10);
    clients.push_back(fd);
  }
  int spare = ::socket(AF_INET, SOCK_STREAM, 0);  // for the connect after the reset
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = 64;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(11);
  std::vector<int> filler;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;) filler.push_back(fd);
  if (errno != EMFILE) _exit(12);
  AcceptGuard guard("test");  // its reserve finds no number
  boost::system::error_code ec;
  acceptor.accept(ec);
  if (ec.value() != EMFILE) _exit(13);
  guard.failed(acceptor, ec);
  if (guard.shed() != 0) _exit(14);
  if (guard.queueResets() != 1) _exit(15);
  for (int fd : clients) {
    char byte;
    if (::read(fd, &byte, 1) != -1 || errno != ECONNRESET) _exit(16);
  }
  // Listening again: a new client is accepted once a number is free.
  ::close(filler.back());
  if (::connect(spare, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) _exit(17);
  tcp::socket accepted = acceptor.accept(ec);
  if (ec) _exit(18);
  _exit(0);
}

TEST(AcceptGuard, WithoutAReserveTheListenerResetsItsQueueAndListensAgain) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(resetQueueWithoutAReserve(), testing::ExitedWithCode(0), "");
}

TEST(AcceptGuard, OutOfDescriptorsResetsEveryWaitingClient) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(shedEveryWaitingClient(), testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace sluice
