#pragma once
// What every fuzzer here shares: REQUIRE(cond) aborts with the condition and its place, so
// libFuzzer keeps the input as a crash.
#include <QCoreApplication>

#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <cstdlib>

[[noreturn]] inline void fuzzInvariantViolated(const char *what, const char *file, int line)
{
    std::fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    std::fflush(stderr);
    std::abort();
}

// What every fuzzer's LLVMFuzzerInitialize does: silence protobuf's log ("invalid UTF-8" for
// every such input) and make the QCoreApplication the code under test posts events to.
#define OPCONSOLE_FUZZER_INITIALIZE(name)                                                          \
    extern "C" int LLVMFuzzerInitialize(int *, char ***)                                           \
    {                                                                                              \
        google::protobuf::SetLogHandler(nullptr);                                                  \
        static int argc = 1;                                                                       \
        static char program[] = name;                                                              \
        static char *argv[] = {program, nullptr};                                                  \
        static QCoreApplication app(argc, argv);                                                   \
        return 0;                                                                                  \
    }

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzzInvariantViolated(#cond, __FILE__, __LINE__);                                      \
    } while (0)
