#include "address_guard.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

IpAddress ip(const std::string& text) {
  if (auto v4 = parseIpv4(text)) return IpAddress::fromV4(*v4);
  auto v6 = parseIpv6(text);
  EXPECT_TRUE(v6) << text;
  return IpAddress::fromV6(v6.value_or(Ipv6Address{}));
}

CidrSet cidrs(std::initializer_list<const char*> texts) {
  CidrSet out;
  for (std::string t : texts) {
    if (t.find(':') != std::string::npos) {
      out.v6.push_back(*parseIpv6Cidr(t));
    } else {
      out.v4.push_back(*parseIpv4Cidr(t));
    }
  }
  return out;
}

// "allowed" or the refusal's word.
std::string verdict(const AddressGuard& guard, const std::string& address) {
  auto refusal = guard.check(ip(address));
  return refusal ? toString(*refusal) : "allowed";
}

struct Row {
  const char* address;
  const char* expected;
};

void expectTable(const AddressGuard& guard, const std::vector<Row>& rows) {
  for (const auto& row : rows) EXPECT_EQ(verdict(guard, row.address), row.expected) << row.address;
}

TEST(AddressGuard, DefaultsRefuseEveryInternalClassOfIpv4) {
  expectTable(AddressGuard(), {
                                  {"0.0.0.0", "unspecified"},
                                  {"0.1.2.3", "unspecified"},
                                  {"127.0.0.1", "loopback"},
                                  {"127.255.255.254", "loopback"},
                                  {"169.254.169.254", "link-local"},  // cloud metadata
                                  {"169.254.0.1", "link-local"},
                                  {"224.0.0.1", "multicast"},
                                  {"239.255.255.250", "multicast"},
                                  {"255.255.255.255", "broadcast"},
                                  {"240.0.0.1", "reserved"},
                                  {"10.0.0.1", "private"},
                                  {"10.255.255.255", "private"},
                                  {"172.16.0.1", "private"},
                                  {"172.31.255.255", "private"},
                                  {"192.168.1.1", "private"},
                                  {"100.64.0.1", "private"},
                                  {"100.127.255.255", "private"},
                                  // Just outside those ranges, and the test topology's range.
                                  {"172.15.255.255", "allowed"},
                                  {"172.32.0.0", "allowed"},
                                  {"100.128.0.0", "allowed"},
                                  {"169.253.255.255", "allowed"},
                                  {"126.255.255.255", "allowed"},
                                  {"223.255.255.255", "allowed"},
                                  {"198.18.100.10", "allowed"},
                                  {"198.19.255.255", "allowed"},
                                  {"8.8.8.8", "allowed"},
                              });
}

TEST(AddressGuard, DefaultsRefuseEveryInternalClassOfIpv6) {
  expectTable(AddressGuard(), {
                                  {"::", "unspecified"},
                                  {"::1", "loopback"},
                                  {"fe80::1", "link-local"},
                                  {"febf:ffff::1", "link-local"},
                                  {"ff02::1", "multicast"},
                                  {"ff0e::1", "multicast"},
                                  {"fc00::1", "private"},
                                  {"fd12:3456::1", "private"},
                                  {"fec0::1", "private"},           // deprecated site-local
                                  {"64:ff9b:1::a00:1", "private"},  // local-use NAT64: its IPv4 is unknowable
                                  {"2001:db8:100::10", "allowed"},
                                  {"2606:4700::1111", "allowed"},
                                  {"fe7f:ffff::1", "allowed"},
                              });
}

TEST(AddressGuard, Ipv6FormsAreJudgedByTheIpv4AddressTheyCarry) {
  expectTable(AddressGuard(), {
                                  // v4-mapped: an AF_INET6 socket reaches the IPv4 address itself.
                                  {"::ffff:127.0.0.1", "loopback"},
                                  {"::ffff:169.254.169.254", "link-local"},
                                  {"::ffff:10.1.2.3", "private"},
                                  {"::ffff:0.0.0.0", "unspecified"},
                                  {"::ffff:198.18.100.10", "allowed"},
                                  // IPv4-compatible (deprecated).
                                  {"::127.0.0.1", "loopback"},
                                  {"::169.254.169.254", "link-local"},
                                  {"::198.18.100.10", "allowed"},
                                  // NAT64 well-known prefix.
                                  {"64:ff9b::7f00:1", "loopback"},
                                  {"64:ff9b::a9fe:a9fe", "link-local"},
                                  {"64:ff9b::c0a8:101", "private"},
                                  {"64:ff9b::c612:640a", "allowed"},
                                  // 6to4: the IPv4 address follows 2002:.
                                  {"2002:7f00:1::1", "loopback"},
                                  {"2002:a9fe:a9fe::", "link-local"},
                                  {"2002:e000:1::", "multicast"},
                                  {"2002:c612:640a::1", "allowed"},
                                  // Teredo: the client's address, inverted, in the last 32 bits.
                                  {"2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"},  // ~0x80fffffe = 127.0.0.1
                                  {"2001:0:4136:e378:8000:63bf:39ed:9bf5", "allowed"},   // ~ = 198.18.100.10
                              });
}

TEST(AddressGuard, OwnAddressesAndDeniedRangesAreRefusedEvenWhenPrivateIsOptedIn) {
  AddressGuard guard({cidrs({"198.18.200.0/24", "10.96.0.0/12", "2001:db8:dead::/48"}), cidrs({"10.0.0.0/8"})},
                     {ip("198.18.3.2"), ip("198.18.4.1"), ip("2001:db8:3::2"), ip("10.1.1.1")});
  expectTable(guard, {
                         {"198.18.3.2", "self"},
                         {"198.18.4.1", "self"},
                         {"::ffff:198.18.3.2", "self"},
                         {"64:ff9b::c612:302", "self"},
                         {"2001:db8:3::2", "self"},
                         {"198.18.3.3", "allowed"},
                         {"198.18.200.9", "deny-cidr"},
                         {"::ffff:198.18.200.9", "deny-cidr"},
                         {"2001:db8:dead::1", "deny-cidr"},
                         {"10.96.0.10", "deny-cidr"},  // deny wins over the opt-in
                         {"10.1.2.3", "allowed"},      // opted in
                         {"10.1.1.1", "self"},         // opted in, but the gateway's own
                         {"::ffff:10.1.2.3", "allowed"},
                         {"172.16.0.1", "private"},  // not opted in
                         // Opting in a private range never opens the fixed classes.
                         {"127.0.0.1", "loopback"},
                         {"169.254.169.254", "link-local"},
                     });
}

TEST(AddressGuard, PrivateOptInIsExactlyTheListedRanges) {
  AddressGuard guard({{}, cidrs({"10.20.0.0/16", "fd00:1::/32"})}, {});
  expectTable(guard, {
                         {"10.20.5.5", "allowed"},
                         {"10.21.0.1", "private"},
                         {"fd00:1::5", "allowed"},
                         {"fd00:2::5", "private"},
                     });
}

TEST(AddressGuard, FilterKeepsTheAllowedAnswersInOrderAndNamesEachRefusal) {
  AddressGuard guard({}, {ip("198.18.3.2")});
  GuardedAddresses g =
      guard.filter({ip("127.0.0.1"), ip("198.18.100.10"), ip("198.18.3.2"), ip("::1"), ip("198.18.100.11")});
  ASSERT_EQ(g.allowed.size(), 2u);
  EXPECT_EQ(formatIp(g.allowed[0]), "198.18.100.10");
  EXPECT_EQ(formatIp(g.allowed[1]), "198.18.100.11");
  ASSERT_EQ(g.refused.size(), 3u);
  EXPECT_EQ(formatIp(g.refused[0].address), "127.0.0.1");
  EXPECT_EQ(g.refused[0].reason, AddressRefusal::Loopback);
  EXPECT_EQ(g.refused[1].reason, AddressRefusal::Self);
  EXPECT_EQ(formatIp(g.refused[2].address), "::1");

  GuardedAddresses none = guard.filter({ip("169.254.169.254")});
  EXPECT_TRUE(none.allowed.empty());
  ASSERT_EQ(none.refused.size(), 1u);
  EXPECT_EQ(none.refused[0].reason, AddressRefusal::LinkLocal);
}

TEST(AddressGuard, OnlyRangesInsideAPrivateRangeCanBeOptedIn) {
  EXPECT_TRUE(insidePrivateRange(*parseIpv4Cidr("10.0.0.0/8")));
  EXPECT_TRUE(insidePrivateRange(*parseIpv4Cidr("172.20.0.0/16")));
  EXPECT_TRUE(insidePrivateRange(*parseIpv4Cidr("100.64.1.1")));
  EXPECT_TRUE(insidePrivateRange(*parseIpv6Cidr("fd00::/8")));
  EXPECT_FALSE(insidePrivateRange(*parseIpv4Cidr("0.0.0.0/0")));
  EXPECT_FALSE(insidePrivateRange(*parseIpv4Cidr("10.0.0.0/7"))) << "wider than 10/8";
  EXPECT_FALSE(insidePrivateRange(*parseIpv4Cidr("127.0.0.0/8")));
  EXPECT_FALSE(insidePrivateRange(*parseIpv4Cidr("169.254.169.254/32")));
  EXPECT_FALSE(insidePrivateRange(*parseIpv4Cidr("198.18.0.0/15")));
  EXPECT_FALSE(insidePrivateRange(*parseIpv6Cidr("::/0")));
  EXPECT_FALSE(insidePrivateRange(*parseIpv6Cidr("fe80::/10")));
}

}  // namespace
}  // namespace sluice
