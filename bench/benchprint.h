#pragma once
// Every benchmark prints one figure per line, "name value unit" (docs/performance.md).
#include <cstdio>

inline void printFigure(const char *name, double value, const char *unit)
{
    std::printf("%s %.3f %s\n", name, value, unit);
    std::fflush(stdout);
}
