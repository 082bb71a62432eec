#pragma once
// Internal to CommandRegistry: maps command ids to entry slots.
//
// Open addressing with linear probing and backward-shift deletion, at most half full. A cell is
// 8 bytes (slot and a 32-bit tag of the id's hash), so a lookup touches one cache line of the
// table and then the candidate entry's id; nothing is allocated per command. The caller keeps
// the ids: keyOf(slot) returns the id stored in that slot. The tag also picks the home cell, so
// growing and erasing never hash an id again.
#include <QString>
#include <QtGlobal>

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace opconsole::detail {

class SlotIndex
{
public:
    static constexpr quint32 None = 0xffff'ffffu;

    static quint32 tagOf(size_t hash) { return quint32(hash ^ (hash >> 32)); }

    size_t size() const { return m_size; }
    size_t cells() const { return m_cells.size(); }

    // The slot registered under key, or None.
    template <typename KeyOf>
    quint32 find(const QString &key, quint32 tag, const KeyOf &keyOf) const
    {
        if (m_cells.empty())
            return None;
        for (size_t i = tag & m_mask;; i = (i + 1) & m_mask) {
            const Cell cell = m_cells[i];
            if (cell.slot == None)
                return None;
            if (cell.tag == tag && keyOf(cell.slot) == key)
                return cell.slot;
        }
    }

    // Where key is, or the free cell where it would go: {cell, found}. The cell stays valid for
    // place() until the next insert or erase.
    template <typename KeyOf>
    std::pair<size_t, bool> probe(const QString &key, quint32 tag, const KeyOf &keyOf)
    {
        if ((m_size + 1) * 2 > m_cells.size())
            rehash(std::max<size_t>(MinCells, m_cells.size() * 2));
        for (size_t i = tag & m_mask;; i = (i + 1) & m_mask) {
            const Cell cell = m_cells[i];
            if (cell.slot == None)
                return {i, false};
            if (cell.tag == tag && keyOf(cell.slot) == key)
                return {i, true};
        }
    }

    quint32 slotAt(size_t cell) const { return m_cells[cell].slot; }

    // Fills the free cell that probe() returned.
    void place(size_t cell, quint32 tag, quint32 slot)
    {
        m_cells[cell] = {slot, tag};
        ++m_size;
    }

    // Removes the cell holding slot (registered with tag); no id comparison, no hashing.
    void erase(quint32 tag, quint32 slot)
    {
        if (m_cells.empty())
            return;
        size_t hole = tag & m_mask;
        while (m_cells[hole].slot != slot) {
            if (m_cells[hole].slot == None)
                return; // not indexed
            hole = (hole + 1) & m_mask;
        }
        --m_size;
        // Pull back every following cell of the run that may live at the hole.
        for (size_t j = (hole + 1) & m_mask;; j = (j + 1) & m_mask) {
            const Cell cell = m_cells[j];
            if (cell.slot == None)
                break;
            const size_t home = cell.tag & m_mask;
            if (((j - home) & m_mask) >= ((j - hole) & m_mask)) {
                m_cells[hole] = cell;
                hole = j;
            }
        }
        m_cells[hole] = Cell{};
        if (m_cells.size() > MinCells && m_size * 8 < m_cells.size())
            rehash(m_cells.size() / 2); // bounded memory after a burst
    }

    void clear()
    {
        m_cells.clear();
        m_mask = 0;
        m_size = 0;
    }

private:
    struct Cell
    {
        quint32 slot = None;
        quint32 tag = 0;
    };
    static constexpr size_t MinCells = 1024;

    void rehash(size_t cells)
    {
        std::vector<Cell> old(cells);
        old.swap(m_cells);
        m_mask = cells - 1;
        for (const Cell cell : old) {
            if (cell.slot == None)
                continue;
            size_t i = cell.tag & m_mask;
            while (m_cells[i].slot != None)
                i = (i + 1) & m_mask;
            m_cells[i] = cell;
        }
    }

    std::vector<Cell> m_cells;
    size_t m_mask = 0;
    size_t m_size = 0;
};

} // namespace opconsole::detail
