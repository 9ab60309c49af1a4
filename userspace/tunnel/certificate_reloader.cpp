#include "certificate_reloader.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "spawn.h"

namespace sluice {
namespace {

using std::chrono::seconds;

// After a refusal the files are tried again this late, doubling up to the cap: a
// certificate that is not valid yet becomes valid, a missed event is caught up.
constexpr std::chrono::milliseconds kFirstRetry{5000};
constexpr std::chrono::milliseconds kMaxRetry{300'000};

long secondsBetween(WallClock::time_point from, WallClock::time_point to) {
  return std::chrono::duration_cast<seconds>(to - from).count();
}

std::string describe(const MeshCredentials& c) {
  return "file=" + c.files.cert.string() + " uri=" + c.certificate.uri() + " serial=" + c.certificate.serial +
         " not_before=" + formatUtc(c.certificate.notBefore) + " not_after=" + formatUtc(c.certificate.notAfter);
}

}  // namespace

CertificateReloader::CertificateReloader(asio::io_context& io, TlsFiles files, TlsRole role, bool watch,
                                         Configure configure)
    : io_(io),
      files_(std::move(files)),
      role_(role),
      configure_(std::move(configure)),
      current_(loadMeshCredentials(files_, role_, configure_)),
      reloadTimer_(io),
      expiryTimer_(io),
      retryDelay_(kFirstRetry) {
  spdlog::info("certificate loaded {} expires_in_s={}", describe(*current()),
               secondsBetween(WallClock::now(), current()->certificate.notAfter));
  if (watch) {
    watcher_ = std::make_unique<ConfigWatcher>(
        io, std::vector<std::filesystem::path>{files_.cert, files_.key, files_.ca}, [this] {
          retryDelay_ = kFirstRetry;  // new files: the backoff starts over
          scheduleReload("file changed", kSettle);
        });
    asio::co_spawn(io, watcher_->run(), logEscapedException("certificate watcher"));
  }
  asio::co_spawn(io, warnNearExpiry(), logEscapedException("certificate expiry check"));
}

void CertificateReloader::requireSameFiles(const TlsFiles& files, const std::string& where) const {
  if (files.cert == files_.cert && files.key == files_.key && files.ca == files_.ca) return;
  throw ConfigError(where +
                    " names other certificate files: restart to use them (the files in use are reloaded when they "
                    "change)");
}

void CertificateReloader::scheduleReload(const char* why, std::chrono::milliseconds delay) {
  reloadTimer_.expires_after(delay);  // a later event restarts the wait: one reload per burst
  reloadTimer_.async_wait([this, why](const boost::system::error_code& ec) {
    if (!ec) reload(why);
  });
}

void CertificateReloader::reload(const char* why) {
  // Taken before loading: a write that lands while the files load still counts as a change.
  auto before = watcher_ ? watcher_->snapshot() : ConfigWatcher::Snapshot{};
  std::shared_ptr<const MeshCredentials> next;
  try {
    next = loadMeshCredentials(files_, role_, configure_);
  } catch (const std::exception& e) {
    ++rejected_;
    spdlog::error("certificate rejected ({}) rejected_total={}; keeping serial={} not_after={}; retry in {}s: {}", why,
                  rejected_, current()->certificate.serial, formatUtc(current()->certificate.notAfter),
                  retryDelay_.count() / 1000, e.what());
    scheduleReload("retry", retryDelay_);
    retryDelay_ = std::min(retryDelay_ * 2, kMaxRetry);
    return;
  }
  retryDelay_ = kFirstRetry;
  reloadTimer_.cancel();
  if (watcher_) watcher_->markLoaded(std::move(before));
  const std::string previous = current()->certificate.serial;
  current_.store(std::move(next));
  ++reloads_;
  spdlog::info("certificate reloaded ({}) reloads_total={} previous_serial={} {} expires_in_s={}", why, reloads_,
               previous, describe(*current()), secondsBetween(WallClock::now(), current()->certificate.notAfter));
  expiryTimer_.cancel();  // the expiry check starts over with the new certificate
}

awaitable<void> CertificateReloader::warnNearExpiry() {
  while (true) {
    const CertificateInfo certificate = current()->certificate;
    const auto now = WallClock::now();
    const seconds window = expiryWarningWindow(certificate);
    const seconds repeat = std::clamp<seconds>(window / 4, seconds(1), std::chrono::hours(1));
    WallClock::time_point next;
    if (now >= certificate.notAfter) {
      spdlog::error("certificate EXPIRED {}: peers refuse new connections until it is rotated", describe(*current()));
      next = now + repeat;
    } else if (now >= certificate.notAfter - window) {
      spdlog::warn(
          "certificate close to expiry {} expires_in_s={} (warning window: the last {}s, a third of its "
          "lifetime or 24h): rotate it",
          describe(*current()), secondsBetween(now, certificate.notAfter), window.count());
      next = std::min(now + repeat, certificate.notAfter);
    } else {
      // Woken at least hourly, so a jump of the wall clock is noticed.
      next = std::min(certificate.notAfter - window, now + std::chrono::hours(1));
    }
    expiryTimer_.expires_at(next);
    boost::system::error_code ec;
    co_await expiryTimer_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

}  // namespace sluice
