// jemalloc's settings, compiled into each daemon (jemalloc reads this symbol at start;
// MALLOC_CONF in the environment still overrides it). Unused dirty pages go back to the
// system within a few seconds of load ending, also on an idle daemon (background
// thread), besides the explicit purge after a burst (memory_trim.cpp); one arena per
// core (percpu_arena), not jemalloc's four, keeps a small daemon small.
extern "C" {
const char* malloc_conf = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0,percpu_arena:percpu";
}
