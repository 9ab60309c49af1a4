// How a daemon takes a rotated mesh certificate: when the certificate, key or CA file
// changes (written in place and closed, replaced by rename, or a Kubernetes Secret's
// `..data` symlink swap; ConfigWatcher), or on SIGHUP, it builds a new TLS context after a
// short settle delay. New connections use the new context; established ones keep the one
// they started with (each SSL holds a reference to its SSL_CTX). Files that do not load,
// a key that does not match the certificate (for example the certificate written but not
// yet its key), a certificate outside its validity window or without exactly one URI SAN
// are refused loudly, counted, and the loaded credentials stay; the files are tried again
// on the next change and after a backoff. The pair of RulesReloader, for certificates.
#pragma once

#include <atomic>
#include <boost/asio/system_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "async.h"
#include "config.h"
#include "config_watcher.h"
#include "tls_context.h"

namespace sluice {

class CertificateReloader {
 public:
  using Configure = std::function<void(SSL_CTX*)>;

  // Loads the files now; throws (naming the file and why) if they cannot serve, so a
  // daemon does not start with an identity it could not present.
  CertificateReloader(asio::io_context& io, TlsFiles files, TlsRole role, bool watch, Configure configure = {});

  // The context for a new connection. A rotation replaces it; the agent's tunnel pool
  // drains connections made with an older context, so new flows present the new one.
  // Worker threads call this while a rotation may swap the context: the pointer keeps
  // the context alive for as long as the caller holds it.
  std::shared_ptr<SSL_CTX> context() const {
    auto credentials = current_.load();
    return std::shared_ptr<SSL_CTX>(credentials, credentials->context.get());
  }
  CertificateInfo certificate() const { return current_.load()->certificate; }

  // The watched paths are fixed for the life of the process: a rules reload that names
  // other files is refused (ConfigError naming `where`).
  void requireSameFiles(const TlsFiles& files, const std::string& where) const;

  void reload(const char* why);
  uint64_t reloads() const { return reloads_; }
  uint64_t rejected() const { return rejected_; }

  // A cert and its key replaced one after the other arrive as separate events.
  static constexpr std::chrono::milliseconds kSettle{500};

 private:
  void scheduleReload(const char* why, std::chrono::milliseconds delay);
  awaitable<void> warnNearExpiry();

  asio::io_context& io_;
  const TlsFiles files_;
  const TlsRole role_;
  const Configure configure_;
  std::shared_ptr<const MeshCredentials> current() const { return current_.load(); }
  std::atomic<std::shared_ptr<const MeshCredentials>> current_;
  std::unique_ptr<ConfigWatcher> watcher_;
  asio::steady_timer reloadTimer_;
  asio::system_timer expiryTimer_;
  std::chrono::milliseconds retryDelay_;
  uint64_t reloads_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace sluice
