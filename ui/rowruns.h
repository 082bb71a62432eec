#pragma once
// Rows in runs: a model that changed some rows signals one dataChanged per run of adjacent
// rows (a wide range would have a sorting proxy look again at rows that did not change).

#include <cstddef>

namespace opconsole {

// Calls run(first, last) for each run of adjacent rows of `rows` (sorted, unique).
template <typename Rows, typename Run> void forEachRun(const Rows &rows, Run &&run)
{
    const std::size_t n = std::size_t(rows.size());
    for (std::size_t i = 0; i < n;) {
        std::size_t j = i;
        while (j + 1 < n && rows[j + 1] == rows[j] + 1)
            ++j;
        run(rows[i], rows[j]);
        i = j + 1;
    }
}

} // namespace opconsole
