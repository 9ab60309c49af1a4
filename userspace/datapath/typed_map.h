// A BPF map with its key and value types checked against the loaded map once, at open,
// so a layout drift between the ABI header and a pinned map fails loudly at start-up.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bpf_pins.h"
#include "fd.h"

namespace sluice {

template <class K, class V>
class TypedMap {
 public:
  TypedMap() = default;
  // Borrows a map fd (the skeleton keeps it open) or owns one opened from a pin.
  static TypedMap borrow(int fd, const std::string& name) { return TypedMap(fd, UniqueFd(), name); }
  static TypedMap openPinned(const std::filesystem::path& pin) {
    int fd = bpf_obj_get(pin.c_str());
    if (fd < 0) throw std::runtime_error("opening pinned map " + pin.string() + ": " + errnoText(errno));
    UniqueFd owned(fd);
    return TypedMap(fd, std::move(owned), pin.filename().string());
  }

  std::optional<V> lookup(const K& key) const {
    V value{};
    if (bpf_map_lookup_elem(fd_, &key, &value) != 0) return std::nullopt;
    return value;
  }
  // Per-CPU maps: one value per possible CPU.
  std::vector<V> lookupPerCpu(const K& key, int cpus) const {
    std::vector<V> values(cpus);
    if (bpf_map_lookup_elem(fd_, &key, values.data()) != 0) values.clear();
    return values;
  }
  std::optional<V> take(const K& key) const {
    V value{};
    if (bpf_map_lookup_and_delete_elem(fd_, &key, &value) != 0) return std::nullopt;
    return value;
  }
  void put(const K& key, const V& value) const {
    if (bpf_map_update_elem(fd_, &key, &value, BPF_ANY) != 0) {
      throw std::runtime_error("updating map " + name_ + ": " + errnoText(errno));
    }
  }
  bool erase(const K& key) const { return bpf_map_delete_elem(fd_, &key) == 0; }
  std::vector<K> keys() const {
    std::vector<K> out;
    K key{};
    K next{};
    const void* cursor = nullptr;
    while (bpf_map_get_next_key(fd_, cursor, &next) == 0) {
      out.push_back(next);
      key = next;
      cursor = &key;
    }
    return out;
  }
  int fd() const { return fd_; }
  const std::string& name() const { return name_; }

 private:
  TypedMap(int fd, UniqueFd owned, std::string name) : fd_(fd), owned_(std::move(owned)), name_(std::move(name)) {
    bpf_map_info info{};
    __u32 length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd_, &info, &length) != 0) {
      throw std::runtime_error("reading info of map " + name_ + ": " + errnoText(errno));
    }
    if (info.key_size != sizeof(K) || info.value_size != sizeof(V)) {
      throw std::runtime_error("map " + name_ + " has key/value sizes " + std::to_string(info.key_size) + "/" +
                               std::to_string(info.value_size) + ", this build expects " + std::to_string(sizeof(K)) +
                               "/" + std::to_string(sizeof(V)) +
                               ": a pin from another sluice version? run 'sluicectl uninstall'");
    }
  }
  int fd_ = -1;
  UniqueFd owned_;
  std::string name_;
};

}  // namespace sluice
