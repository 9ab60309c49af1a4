// The probes behind kernel_features.h: real syscalls, nothing attached.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "fd.h"
#include "kernel_features.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sluice {
namespace {

using enum KernelFeatureId;

// Loads `r0 = 1; exit` as TYPE with EXPECTED attach type: the kernel refuses an attach
// type it does not know with EINVAL before the verifier runs.
UniqueFd loadTrivialProgram(bpf_prog_type type, bpf_attach_type expected) {
  const bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 1},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = expected);
  return UniqueFd(bpf_prog_load(type, "sl_probe", "GPL", insns, 2, &opts));
}

bool loads(bpf_prog_type type, bpf_attach_type expected) {
  return static_cast<bool>(loadTrivialProgram(type, expected));
}

// A cgroup link to a directory that is not a cgroup: a kernel with cgroup links says the
// target is bad (EBADF); one without BPF_LINK_CREATE for cgroups says EINVAL.
bool cgroupLinkCreate() {
  UniqueFd prog = loadTrivialProgram(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT);
  UniqueFd notCgroup(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!prog || !notCgroup) return false;
  UniqueFd link(bpf_link_create(prog.get(), notCgroup.get(), BPF_CGROUP_INET4_CONNECT, nullptr));
  return !link && errno == EBADF;
}

// BPF_LINK_DETACH on a bad descriptor: EBADF where the command exists, EINVAL before.
bool linkDetach() {
  return bpf_link_detach(-1) != 0 && errno == EBADF;
}

bool soNetnsCookie() {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  return s && getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0;
}

}  // namespace

// Loads `call HELPER; r0 = 1; exit` with the verifier's log. Arguments are not set up, so
// a known helper may still be refused; only the verifier's words for "this program type
// has no such helper" (6.1: "unknown func", 6.18: "cannot use helper") mean absent.
// libbpf_probe_bpf_helper of libbpf 1.1 knows only the older wording.
bool kernelHasHelper(int progType, int expectedAttachType, int helperId) {
  const bpf_insn insns[] = {
      {.code = BPF_JMP | BPF_CALL, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = helperId},
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 1},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  std::string log(16384, '\0');
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = static_cast<bpf_attach_type>(expectedAttachType),
              .log_level = 1, .log_size = static_cast<__u32>(log.size()), .log_buf = log.data());
  UniqueFd prog(bpf_prog_load(static_cast<bpf_prog_type>(progType), "sl_probe", "GPL", insns, 3, &opts));
  if (prog) return true;
  if (errno == EPERM) return false;
  return log.find("unknown func") == std::string::npos && log.find("invalid func") == std::string::npos &&
         log.find("cannot use helper") == std::string::npos;
}

std::string runningKernelRelease() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

bool kernelHasFeature(const KernelFeature& feature) {
  switch (feature.id) {
    case Btf:
      return access("/sys/kernel/btf/vmlinux", R_OK) == 0;
    case CgroupConnectHooks:
      return loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT) &&
             loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT);
    case CgroupSendmsgHooks:
      return loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG) &&
             loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG);
    case CgroupGetpeernameHooks:
      return loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_GETPEERNAME) &&
             loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_GETPEERNAME);
    case SockOps:
      return libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, nullptr) == 1;
    case SkStorageMap:
      return libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, nullptr) == 1;
    case SkStorageInSockAddr:
      return kernelHasHelper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, BPF_FUNC_sk_storage_get);
    case SkStorageInSockOps:
      return kernelHasHelper(BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, BPF_FUNC_sk_storage_get);
    case LpmTrie:
      return libbpf_probe_bpf_map_type(BPF_MAP_TYPE_LPM_TRIE, nullptr) == 1;
    case CgroupBpfLink:
      return cgroupLinkCreate();
    case BpfLinkDetach:
      return linkDetach();
    case NetnsCookieInSockAddr:
      return kernelHasHelper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, BPF_FUNC_get_netns_cookie);
    case AncestorCgroupInSockAddr:
      return kernelHasHelper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT,
                             BPF_FUNC_get_current_ancestor_cgroup_id);
    case SoNetnsCookie:
      return soNetnsCookie();
  }
  return false;
}

std::string requireKernelFeatures() {
  const std::string running = runningKernelRelease();
  // Without the privilege every probe fails: say that, not "the kernel is too old".
  if (!loads(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT) && errno == EPERM) {
    throw std::runtime_error("loading BPF programs is not permitted: sluice-agent needs root (CAP_BPF, CAP_NET_ADMIN)");
  }
  const auto missing = missingKernelFeatures(kernelHasFeature);
  if (!missing.empty()) throw std::runtime_error(missingFeaturesMessage(missing, running));
  return running;
}

}  // namespace sluice
