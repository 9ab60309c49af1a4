// One log format for the daemons and the CLI: time, level, message (key=value fields).
//
// Off the hot path: lines go through a bounded queue to one writer thread, so a slow or
// blocked stderr never stalls traffic. The writer writes every waiting line with one
// write(), then lingers 5 ms while lines gather: under load one wake-up and one write per
// 5 ms, not per line; a line after a quiet spell, a warning or an error is written at
// once. When the queue is full the oldest waiting line is dropped (never the caller
// blocked); drops are counted and reported by a line of their own ("log: dropped N
// lines") at most every few seconds. shutdownLogging() writes every waiting line.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>

namespace sluice {

// Level names as spdlog spells them: trace, debug, info, warn, error. Throws on others.
// `queueLines`: 0 writes synchronously (the CLI; tests of one class).
void setupLogging(const std::string& level, size_t queueLines = 8192);
// Writes what is queued and stops the writer thread: call before a daemon returns.
void shutdownLogging();
// Lines dropped because the queue was full, since start.
uint64_t droppedLogLines();

}  // namespace sluice
