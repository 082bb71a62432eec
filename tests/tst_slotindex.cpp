// SlotIndex, the registry's id -> slot table, checked against std::unordered_map under churn,
// with tags chosen to collide so that probing, wrap-around and backward-shift deletion all run.
#include "slotindex.h"

#include <QTest>

#include <random>
#include <unordered_map>

using opconsole::detail::SlotIndex;

class TestSlotIndex : public QObject
{
    Q_OBJECT

private slots:
    void matchesAMapUnderChurn_data();
    void matchesAMapUnderChurn();
    void growsAndShrinksBack();
};

namespace {

// The ids a registry would keep in its table, with tags we choose.
struct Table
{
    std::vector<QString> ids;
    std::vector<quint32> tags;
    const QString &operator()(quint32 slot) const { return ids[slot]; }
};

} // namespace

void TestSlotIndex::matchesAMapUnderChurn_data()
{
    QTest::addColumn<quint32>("tagSpace"); // few distinct tags: long collision runs
    QTest::newRow("spread tags") << quint32(0xffff'ffffu);
    QTest::newRow("64 tags") << quint32(64);
    QTest::newRow("one tag") << quint32(1);
}

void TestSlotIndex::matchesAMapUnderChurn()
{
    QFETCH(quint32, tagSpace);
    std::mt19937 rng(1234);
    const int universe = tagSpace == 1 ? 500 : 3000;
    Table table;
    for (int i = 0; i < universe; ++i) {
        table.ids.push_back(QStringLiteral("cmd-%1").arg(i));
        // High tags too, so home cells wrap around the end of the table.
        table.tags.push_back(tagSpace == 0xffff'ffffu
                                 ? quint32(rng())
                                 : quint32(rng() % tagSpace) * 0x0100'0001u + 0xffff'fc00u);
    }
    SlotIndex index;
    std::unordered_map<quint32, bool> model; // slot -> present
    std::uniform_int_distribution<int> pick(0, universe - 1);
    for (int step = 0; step < 20 * universe; ++step) {
        const quint32 slot = quint32(pick(rng));
        const QString &id = table.ids[slot];
        const quint32 tag = table.tags[slot];
        const bool present = model[slot];
        if (rng() % 2) {
            const auto [cell, found] = index.probe(id, tag, table);
            QCOMPARE(found, present);
            if (found) {
                QCOMPARE(index.slotAt(cell), slot);
            } else {
                index.place(cell, tag, slot);
                model[slot] = true;
            }
        } else if (present) {
            index.erase(tag, slot);
            model[slot] = false;
        }
        if (step % 499 == 0) { // every id answers as the model says
            size_t count = 0;
            for (quint32 s = 0; s < quint32(universe); ++s) {
                const bool in = model.count(s) && model[s];
                count += in;
                QCOMPARE(index.find(table.ids[s], table.tags[s], table), in ? s : SlotIndex::None);
            }
            QCOMPARE(index.size(), count);
        }
    }
}

void TestSlotIndex::growsAndShrinksBack()
{
    Table table;
    std::mt19937 rng(99);
    const int n = 200'000;
    for (int i = 0; i < n; ++i) {
        table.ids.push_back(QString::number(i));
        table.tags.push_back(quint32(rng()));
    }
    SlotIndex index;
    for (quint32 s = 0; s < quint32(n); ++s) {
        const auto [cell, found] = index.probe(table.ids[s], table.tags[s], table);
        QVERIFY(!found);
        index.place(cell, table.tags[s], s);
    }
    QCOMPARE(index.size(), size_t(n));
    QVERIFY(index.cells() >= size_t(2 * n));
    for (quint32 s = 0; s + 10 < quint32(n); ++s)
        index.erase(table.tags[s], s);
    QCOMPARE(index.size(), size_t(10));
    QVERIFY2(index.cells() <= 2048, "the table shrinks after a burst");
    for (quint32 s = quint32(n) - 10; s < quint32(n); ++s)
        QCOMPARE(index.find(table.ids[s], table.tags[s], table), s);
    QCOMPARE(index.find(table.ids[0], table.tags[0], table), SlotIndex::None);
}

QTEST_GUILESS_MAIN(TestSlotIndex)
#include "tst_slotindex.moc"
