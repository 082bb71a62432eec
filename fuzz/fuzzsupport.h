#pragma once
// What every fuzzer here shares: REQUIRE(cond) aborts with the condition and its place, so
// libFuzzer keeps the input as a crash.
#include <cstdio>
#include <cstdlib>

[[noreturn]] inline void fuzzInvariantViolated(const char *what, const char *file, int line)
{
    std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    std::fflush(stderr);
    std::abort();
}

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzzInvariantViolated(#cond, __FILE__, __LINE__);                                      \
    } while (0)
