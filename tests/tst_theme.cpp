// Colours that follow the palette with readable contrast, icons that read on light and dark
// rows, and the application's resources (icon, desktop entry, AppStream metainfo).
#include "commandtablemodel.h"
#include "fleetmodel.h"
#include "historymodel.h"
#include "records.h"
#include "theme.h"

#include <QApplication>
#include <QBrush>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QLabel>
#include <QPixmap>
#include <QSettings>
#include <QStyle>
#include <QTest>
#include <QXmlStreamReader>

using namespace opconsole;
using namespace std::chrono;

namespace {

const QString ResourcesDir = QStringLiteral(OPCONSOLE_SOURCE_DIR "/resources");

CommandOutcome record(quint64 seq, CommandState state)
{
    CommandOutcome o = testRecord(seq, QStringLiteral("bot-%1").arg(seq), state);
    o.reason = QStringLiteral("why");
    return o;
}

// Every kind of row the command tables show: each state, then a late ack and a late
// rejection on expired commands.
QList<CommandOutcome> everyRow()
{
    QList<CommandOutcome> rows;
    quint64 seq = 1;
    for (int s = 0; s < CommandStateCount; ++s)
        rows << record(seq++, CommandState(s));
    for (const bool success : {true, false}) {
        CommandOutcome late = record(seq++, CommandState::Expired);
        CommandAckData ack;
        ack.success = success;
        ack.message = QStringLiteral("after all");
        late.lateAck = ack;
        late.lateAckAt = late.lateFrom() + 2s;
        rows << late;
    }
    return rows;
}

// A light and a dark palette of a desktop's own, not Fusion's: the adjustment must hold
// for them too.
QPalette withColours(QPalette p, QRgb base, QRgb alternate, QRgb window, QRgb text)
{
    p.setColor(QPalette::All, QPalette::Base, QColor::fromRgb(base));
    p.setColor(QPalette::All, QPalette::AlternateBase, QColor::fromRgb(alternate));
    p.setColor(QPalette::All, QPalette::Window, QColor::fromRgb(window));
    p.setColor(QPalette::All, QPalette::Text, QColor::fromRgb(text));
    p.setColor(QPalette::All, QPalette::WindowText, QColor::fromRgb(text));
    return p;
}

void addPalettes()
{
    QTest::addColumn<QPalette>("palette");
    QTest::newRow("light (Fusion)") << lightPalette();
    QTest::newRow("dark (--theme dark)") << darkPalette();
    QTest::newRow("navy desktop") << withColours(darkPalette(), 0x1b2b4b, 0x22355a, 0x2a3b5e,
                                                 0xf0f0f0);
    QTest::newRow("solarized light desktop")
        << withColours(lightPalette(), 0xfdf6e3, 0xeee8d5, 0xe4dcc4, 0x586e75);
    QTest::newRow("grey desktop") << withColours(darkPalette(), 0x4a4a4a, 0x505050, 0x444444,
                                                 0xffffff);
}

QImage imageOf(const QIcon &icon, int size = 16)
{
    return icon.pixmap(size, size).toImage().convertToFormat(QImage::Format_ARGB32);
}

int opaquePixels(const QImage &image)
{
    int n = 0;
    for (int y = 0; y < image.height(); ++y)
        for (int x = 0; x < image.width(); ++x)
            n += qAlpha(image.pixel(x, y)) > 0 ? 1 : 0;
    return n;
}

// The foreground of a cell, checked on every background a table row has. Returns whether
// the cell had a colour.
bool checkCell(const QModelIndex &cell, const QPalette &palette)
{
    const QVariant foreground = cell.data(Qt::ForegroundRole);
    if (!foreground.isValid())
        return false;
    const QColor colour = foreground.value<QBrush>().color();
    for (const auto role : {QPalette::Base, QPalette::AlternateBase}) {
        const double ratio = contrastRatio(colour, palette.color(role));
        if (ratio < MinTextContrast) {
            qWarning("%s on %s: %.2f:1 (row %d, column %d)", qPrintable(colour.name()),
                     qPrintable(palette.color(role).name()), ratio, cell.row(), cell.column());
            return false;
        }
    }
    return true;
}

} // namespace

class TestTheme : public QObject
{
    Q_OBJECT

private slots:
    void contrastIsWcag();
    void tonesAreReadable_data() { addPalettes(); }
    void tonesAreReadable();
    void modelColoursAreReadable_data() { addPalettes(); }
    void modelColoursAreReadable();
    void paletteChangeTakesEffect();
    void themedStyleSheetFollowsThePalette();
    void everyStateHasItsOwnIcon();
    void modelsShowTheIcons();
    void applicationIconLoads();
    void desktopEntryParses();
    void metainfoParses();
    void themeOption();
    void cleanup() { QApplication::setPalette(lightPalette()); }
};

void TestTheme::contrastIsWcag()
{
    QCOMPARE(contrastRatio(Qt::black, Qt::white), 21.0);
    QCOMPARE(contrastRatio(Qt::white, Qt::black), 21.0);
    QCOMPARE(contrastRatio(QColor(0x77, 0x77, 0x77), QColor(0x77, 0x77, 0x77)), 1.0);
    // Known values: #767676 on white is the lightest grey that passes AA (4.54:1).
    QVERIFY(qAbs(contrastRatio(QColor(0x76, 0x76, 0x76), Qt::white) - 4.54) < 0.01);
    // The old hard-coded red and orange on a dark base: what this is for.
    QVERIFY(contrastRatio(QColor(0xc0, 0x1c, 0x28), darkPalette().color(QPalette::Base)) < 4.5);
    QVERIFY(contrastRatio(QColor(0xb3, 0x5c, 0x00), darkPalette().color(QPalette::Base)) < 4.5);
    QVERIFY(isDark(darkPalette()));
    QVERIFY(!isDark(lightPalette()));
}

void TestTheme::tonesAreReadable()
{
    QFETCH(QPalette, palette);
    for (const Tone tone : {Tone::Problem, Tone::Attention, Tone::Good}) {
        const QColor colour = toneColour(tone, palette);
        for (const auto role : {QPalette::Base, QPalette::AlternateBase, QPalette::Window}) {
            const double ratio = contrastRatio(colour, palette.color(role));
            QVERIFY2(ratio >= MinTextContrast,
                     qPrintable(QStringLiteral("tone %1: %2 on %3 is %4:1")
                                    .arg(int(tone))
                                    .arg(colour.name(), palette.color(role).name())
                                    .arg(ratio, 0, 'f', 2)));
        }
    }
    // Still red, orange and green where the palette lets them be (on these it does).
    QVERIFY(toneColour(Tone::Problem, palette).red() > toneColour(Tone::Problem, palette).green());
    QVERIFY(toneColour(Tone::Good, palette).green() > toneColour(Tone::Good, palette).red());
    QVERIFY(toneColour(Tone::Attention, palette).red() >
            toneColour(Tone::Attention, palette).blue());
    // The warning bars: their text on their background.
    const BannerColours banner = bannerColours(palette);
    QVERIFY(contrastRatio(banner.text, banner.background) >= MinTextContrast);
}

void TestTheme::modelColoursAreReadable()
{
    QFETCH(QPalette, palette);
    QApplication::setPalette(palette);
    const QPalette applied = QApplication::palette();

    const QList<CommandOutcome> rows = everyRow();
    CommandTableModel commands;
    commands.applyChanges(rows);
    HistoryModel history;
    history.append(rows);
    QCOMPARE(commands.rowCount(), int(rows.size()));
    QCOMPARE(history.rowCount(), int(rows.size()));
    int coloured = 0;
    for (int r = 0; r < rows.size(); ++r) {
        for (const int column : {int(CommandTableModel::State), int(CommandTableModel::Message)}) {
            const QModelIndex cell = commands.index(r, column);
            if (cell.data(Qt::ForegroundRole).isValid()) {
                QVERIFY2(checkCell(cell, applied), qPrintable(cell.data().toString()));
                ++coloured;
            }
        }
        for (const int column : {int(HistoryModel::State), int(HistoryModel::Message)}) {
            const QModelIndex cell = history.index(r, column);
            if (cell.data(Qt::ForegroundRole).isValid())
                QVERIFY2(checkCell(cell, applied), qPrintable(cell.data().toString()));
        }
    }
    // Rejected, expired, not connected, disconnected, refused, unknown and the two late
    // ones are coloured, in both columns; pending, acked and cancelled are not.
    QCOMPARE(coloured, 8 * 2);

    FleetModel fleet([](const QString &) { return 0; });
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    BotInfo live;
    live.botId = QStringLiteral("live");
    live.connected = true;
    live.lastSeenMs = now;
    BotInfo gone = live;
    gone.botId = QStringLiteral("gone");
    gone.connected = false;
    gone.disconnectedAtMs = now;
    BotInfo awaiting = live;
    awaiting.botId = QStringLiteral("awaiting");
    awaiting.connected = false;
    awaiting.admission = BotAdmission::Awaiting;
    BotInfo rejected = gone;
    rejected.botId = QStringLiteral("rejected");
    rejected.admission = BotAdmission::Rejected;
    for (const BotInfo &bot : {live, gone, awaiting, rejected})
        fleet.upsert(bot);
    int colouredBots = 0;
    for (int r = 0; r < fleet.rowCount(); ++r) {
        const QModelIndex cell = fleet.index(r, FleetModel::Connection);
        if (cell.data(Qt::ForegroundRole).isValid()) {
            QVERIFY2(checkCell(cell, applied), qPrintable(cell.data().toString()));
            ++colouredBots;
            // Never the colour alone: an icon too.
            QVERIFY(!cell.data(Qt::DecorationRole).value<QIcon>().isNull());
        }
    }
    QCOMPARE(colouredBots, 3);
}

void TestTheme::paletteChangeTakesEffect()
{
    CommandTableModel model;
    model.applyChanges({record(1, CommandState::Rejected)});
    const QModelIndex cell = model.index(0, CommandTableModel::State);
    QApplication::setPalette(lightPalette());
    const QColor onLight = cell.data(Qt::ForegroundRole).value<QBrush>().color();
    QApplication::setPalette(darkPalette());
    const QColor onDark = cell.data(Qt::ForegroundRole).value<QBrush>().color();
    QVERIFY(onLight != onDark);
    QCOMPARE(onDark, toneColour(Tone::Problem, QApplication::palette()));
    QVERIFY(contrastRatio(onDark, darkPalette().color(QPalette::Base)) >= MinTextContrast);
}

void TestTheme::themedStyleSheetFollowsThePalette()
{
    QApplication::setPalette(lightPalette());
    QLabel problem;
    setThemedStyleSheet(&problem, QStringLiteral("color: @problem;"));
    const QString light = toneColour(Tone::Problem, QApplication::palette()).name();
    QCOMPARE(problem.styleSheet(), QStringLiteral("color: %1;").arg(light));
    QLabel banner;
    setThemedStyleSheet(&banner, QStringLiteral("QLabel { background: @bannerBackground; color: "
                                                "@bannerText; border: 1px solid @bannerBorder; }"));
    QVERIFY(!banner.styleSheet().contains(u'@'));
    QVERIFY(banner.styleSheet().contains(bannerColours(lightPalette()).background.name()));

    // The desktop (or --theme) turns dark: both follow.
    QApplication::setPalette(darkPalette());
    const QString dark = toneColour(Tone::Problem, QApplication::palette()).name();
    QVERIFY(dark != light);
    QCOMPARE(problem.styleSheet(), QStringLiteral("color: %1;").arg(dark));
    QVERIFY(banner.styleSheet().contains(bannerColours(darkPalette()).background.name()));
    QVERIFY(banner.styleSheet().contains(bannerColours(darkPalette()).text.name()));

    // Cleared: stays cleared when the palette changes again.
    setThemedStyleSheet(&problem, QString());
    QVERIFY(problem.styleSheet().isEmpty());
    QApplication::setPalette(lightPalette());
    QVERIFY(problem.styleSheet().isEmpty());
    QVERIFY(banner.styleSheet().contains(bannerColours(lightPalette()).background.name()));

    QCOMPARE(toneTextStyle(Tone::Problem), QStringLiteral("color: %1;").arg(light));
    QCOMPARE(problemTextStyle(), toneTextStyle(Tone::Problem));
}

void TestTheme::everyStateHasItsOwnIcon()
{
    // Loaded from the resource through Qt's SVG icon engine (libqt6svg6), under offscreen.
    QList<QImage> seen;
    for (int k = 0; k < int(StateIconKind::Count); ++k) {
        const QIcon icon = consoleIcon(StateIconKind(k));
        QVERIFY2(!icon.isNull(), qPrintable(QString::number(k)));
        for (const int size : {16, 22, 32}) {
            const QImage image = imageOf(icon, size);
            QVERIFY2(!image.isNull(), qPrintable(QStringLiteral("icon %1 at %2").arg(k).arg(size)));
            QCOMPARE(image.width(), size);
            // A shape, not an empty square.
            QVERIFY(opaquePixels(image) > size * size / 4);
        }
        const QImage image = imageOf(icon);
        for (int other = 0; other < seen.size(); ++other)
            QVERIFY2(image != seen.at(other),
                     qPrintable(QStringLiteral("icons %1 and %2 look the same").arg(other).arg(k)));
        seen << image;
    }
    // Every command state maps to its own icon.
    QList<StateIconKind> kinds;
    for (int s = 0; s < CommandStateCount; ++s) {
        const StateIconKind kind = iconKindOf(CommandState(s));
        QVERIFY(!kinds.contains(kind));
        QVERIFY(kind != StateIconKind::LateAck && kind != StateIconKind::AwaitingApproval);
        kinds << kind;
    }
}

void TestTheme::modelsShowTheIcons()
{
    const QList<CommandOutcome> rows = everyRow();
    CommandTableModel commands;
    commands.applyChanges(rows);
    HistoryModel history;
    history.append(rows);
    for (int r = 0; r < rows.size(); ++r) {
        const QImage expected = imageOf(consoleIcon(iconKindOf(rows.at(r))));
        const QIcon shown =
            commands.index(r, CommandTableModel::State).data(Qt::DecorationRole).value<QIcon>();
        QCOMPARE(imageOf(shown), expected);
        const QIcon inHistory =
            history.index(r, HistoryModel::State).data(Qt::DecorationRole).value<QIcon>();
        QCOMPARE(imageOf(inHistory), expected);
    }
    // The late ones show the late ack's icon, not their state's.
    QVERIFY(iconKindOf(rows.last()) == StateIconKind::LateAck);
}

void TestTheme::applicationIconLoads()
{
    const QIcon icon = applicationIcon();
    QVERIFY(!icon.isNull());
    for (const int size : {16, 32, 48, 64, 128, 256}) {
        const QImage image = imageOf(icon, size);
        QVERIFY(!image.isNull());
        QCOMPARE(image.size(), QSize(size, size));
        QVERIFY(opaquePixels(image) > size * size / 2);
    }
    // The same file is what the desktop gets (share/icons/hicolor/scalable/apps).
    QFile installed(ResourcesDir + QStringLiteral("/opconsole.svg"));
    QFile compiled(QStringLiteral(":/opconsole.svg"));
    QVERIFY(installed.open(QIODevice::ReadOnly));
    QVERIFY(compiled.open(QIODevice::ReadOnly));
    QCOMPARE(compiled.readAll(), installed.readAll());
}

void TestTheme::desktopEntryParses()
{
    const QString path = ResourcesDir + QStringLiteral("/io.github.opconsole.desktop");
    QVERIFY(QFile::exists(path));
    QSettings entry(path, QSettings::IniFormat);
    QCOMPARE(entry.status(), QSettings::NoError);
    entry.beginGroup(QStringLiteral("Desktop Entry"));
    QCOMPARE(entry.value(QStringLiteral("Type")).toString(), QStringLiteral("Application"));
    QCOMPARE(entry.value(QStringLiteral("Name")).toString(), QStringLiteral("opconsole"));
    QVERIFY(!entry.value(QStringLiteral("Comment")).toString().isEmpty());
    QCOMPARE(entry.value(QStringLiteral("Exec")).toString(), QStringLiteral("opconsole"));
    QCOMPARE(entry.value(QStringLiteral("Terminal")).toString(), QStringLiteral("false"));
    // Icon names the installed SVG (without its suffix).
    const QString icon = entry.value(QStringLiteral("Icon")).toString();
    QVERIFY(QFile::exists(ResourcesDir + QStringLiteral("/%1.svg").arg(icon)));
    // QSettings reads ';' as the start of a comment: the list as written.
    QFile raw(path);
    QVERIFY(raw.open(QIODevice::ReadOnly | QIODevice::Text));
    const QString text = QString::fromUtf8(raw.readAll());
    QVERIFY(text.startsWith(QStringLiteral("[Desktop Entry]\n")));
    QVERIFY(text.contains(QStringLiteral("\nCategories=Network;Monitor;\n")));
}

void TestTheme::metainfoParses()
{
    QFile file(ResourcesDir + QStringLiteral("/io.github.opconsole.metainfo.xml"));
    QVERIFY(file.open(QIODevice::ReadOnly));
    QXmlStreamReader xml(&file);
    QString id, metadataLicense, projectLicense, summary, launchable, launchableType;
    bool description = false;
    QVERIFY(xml.readNextStartElement());
    QVERIFY(xml.name() == u"component");
    QVERIFY(xml.attributes().value(QLatin1String("type")) == u"desktop-application");
    while (!xml.atEnd()) {
        if (xml.readNext() != QXmlStreamReader::StartElement)
            continue;
        if (xml.name() == QLatin1String("id"))
            id = xml.readElementText();
        else if (xml.name() == QLatin1String("metadata_license"))
            metadataLicense = xml.readElementText();
        else if (xml.name() == QLatin1String("project_license"))
            projectLicense = xml.readElementText();
        else if (xml.name() == QLatin1String("summary"))
            summary = xml.readElementText();
        else if (xml.name() == QLatin1String("description"))
            description = true;
        else if (xml.name() == QLatin1String("launchable")) {
            launchableType = xml.attributes().value(QLatin1String("type")).toString();
            launchable = xml.readElementText();
        }
    }
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QCOMPARE(id, QStringLiteral("io.github.opconsole"));
    QCOMPARE(metadataLicense, QStringLiteral("CC0-1.0"));
    QVERIFY(!projectLicense.isEmpty());
    QVERIFY(!summary.isEmpty());
    QVERIFY(description);
    // The launchable is the desktop entry beside it, named after the id.
    QCOMPARE(launchableType, QStringLiteral("desktop-id"));
    QCOMPARE(launchable, id + QStringLiteral(".desktop"));
    QVERIFY(QFile::exists(ResourcesDir + QLatin1Char('/') + launchable));
}

void TestTheme::themeOption()
{
    QVERIFY(parseTheme(QStringLiteral("system")) == Theme::System);
    QVERIFY(parseTheme(QStringLiteral("light")) == Theme::Light);
    QVERIFY(parseTheme(QStringLiteral("dark")) == Theme::Dark);
    QVERIFY(!parseTheme(QStringLiteral("Dark")));
    QVERIFY(!parseTheme(QString()));
    QVERIFY(!parseTheme(QStringLiteral("blue")));

    applyTheme(Theme::Dark);
    QCOMPARE(QApplication::style()->name().toLower(), QStringLiteral("fusion"));
    QCOMPARE(QApplication::palette().color(QPalette::Base), darkPalette().color(QPalette::Base));
    QVERIFY(isDark(QApplication::palette()));
    // A complete palette: readable text everywhere, disabled text still there.
    const QPalette p = QApplication::palette();
    QVERIFY(contrastRatio(p.color(QPalette::Text), p.color(QPalette::Base)) >= 7);
    QVERIFY(contrastRatio(p.color(QPalette::WindowText), p.color(QPalette::Window)) >= 7);
    QVERIFY(contrastRatio(p.color(QPalette::ButtonText), p.color(QPalette::Button)) >= 7);
    QVERIFY(contrastRatio(p.color(QPalette::HighlightedText), p.color(QPalette::Highlight)) >=
            MinTextContrast);
    QVERIFY(contrastRatio(p.color(QPalette::ToolTipText), p.color(QPalette::ToolTipBase)) >= 7);
    QVERIFY(contrastRatio(p.color(QPalette::Disabled, QPalette::Text),
                          p.color(QPalette::Disabled, QPalette::Base)) >= 3);
    applyTheme(Theme::Light);
    QVERIFY(!isDark(QApplication::palette()));
    QCOMPARE(QApplication::palette().color(QPalette::Base), lightPalette().color(QPalette::Base));
}

QTEST_MAIN(TestTheme)
#include "tst_theme.moc"
