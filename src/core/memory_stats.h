// Resident memory of this process, for benchmarks: the current and peak resident set size from
// /proc/self/status, and a reset of the peak (writing 5 to /proc/self/clear_refs, Linux >= 4.0)
// so the peak of one measured region can be read as peak_rss() - the baseline taken after it.
#pragma once
#include <cstdint>

namespace longctx {

int64_t current_rss_bytes();  // VmRSS; -1 if unavailable
int64_t peak_rss_bytes();     // VmHWM; -1 if unavailable
// Returns freed heap pages to the system, then resets the peak to the current size. False if
// the kernel does not allow it (the peak then covers the whole run so far).
bool reset_peak_rss();

}  // namespace longctx
